"""Using a trained net: load, predict, export, hub, torchvision weights."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
import torchvision

import reslearn
import reslearn.data
from reslearn.cli import main as cli_main
from reslearn.train import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory, cifar10):
    """resnet8 trained briefly through the cifar10 data set on 100 original CIFAR-10 images
    (the first 10 of each class in data_batch_1), which it will be asked about as PNG files."""
    from PIL import Image

    from reslearn.data.cifar import (
        CIFAR10_CLASSES,
        PICKLE_DIR,
        TEST_BATCH,
        TRAIN_BATCHES,
        read_pickle,
        write_pickle_batch,
    )

    tmp = tmp_path_factory.mktemp("use")
    a = read_pickle(cifar10 / PICKLE_DIR)
    pick = torch.cat([(a.train_y[:10_000] == c).nonzero()[:10, 0] for c in range(10)])
    x, y = a.train_x[pick].numpy(), a.train_y[pick].tolist()
    d = tmp / "data" / PICKLE_DIR
    d.mkdir(parents=True)
    for name in (*TRAIN_BATCHES, TEST_BATCH):  # every batch the same 100 images
        write_pickle_batch(d / name, x, y)
    for i, (img, label) in enumerate(zip(x, y)):
        (tmp / "png" / CIFAR10_CLASSES[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.transpose(1, 2, 0)).save(tmp / "png" / CIFAR10_CLASSES[label] / f"{i:03d}.png")
    import os

    os.environ["RESLEARN_CACHE_DIR"] = str(tmp / "cache")
    cfg = TrainConfig(
        ModelConfig("cifar_resnet8"),
        DataConfig(str(tmp / "data"), dataset="cifar10", download=False, augment=False),
        OptimConfig(batch_size=50, iterations=120, lr=0.05),
        RunConfig(out=str(tmp / "run"), device="cpu", progress="none", tensorboard=False, eval_every=120),
    )
    return train(cfg), tmp / "png"


def test_load_and_predict_real_cifar_images(cifar_run, capsys):
    run, data = cifar_run
    model, preprocess, classes = reslearn.load(run)
    assert not model.training and classes[0] == "airplane" and len(classes) == 10
    files = [sorted((data / c).iterdir())[0] for c in classes]  # one training image a class
    assert cli_main(["predict", str(run), *map(str, files), "--json", "--device", "cpu", "--top-k", "3"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res) == 10 and all(len(r["top_k"]) == 3 for r in res)
    right = sum(r["top_k"][0]["class"] == Path(r["image"]).parent.name for r in res)
    assert right >= 6, res  # most of a handful of training images
    x = preprocess(torchvision.io.decode_image(str(files[0])))
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32


def test_predict_imagenet_samples_and_unreadable_files(tmp_path, shared_data, capsys):
    torch.manual_seed(0)
    model = reslearn.create_model("resnet18")
    tv = tmp_path / "r18.pth"
    torch.save(model.state_dict(), tv)
    ckpt = tmp_path / "r18.pt"
    assert cli_main(["import-torchvision", str(tv), "--model", "resnet18", "--out", str(ckpt)]) == 0
    capsys.readouterr()
    photos = sorted((shared_data / "imagenet-samples").glob("*.JPEG"))[:6]
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    rc = cli_main(
        ["predict", str(ckpt), *map(str, photos), str(bad), "--json", "--device", "cpu", "--top-k", "1000"]
    )
    assert rc == 1  # an unreadable image: reported, skipped, non-zero exit at the end
    out = capsys.readouterr()
    assert "broken.jpg" in out.err
    res = json.loads(out.out)
    assert len(res) == 6
    for r in res:
        probs = [t["prob"] for t in r["top_k"]]
        assert len(probs) == 1000 and probs == sorted(probs, reverse=True)
        assert sum(probs) == pytest.approx(1.0, abs=1e-4)
        assert {t["class"] for t in r["top_k"][:1]} <= set(reslearn.data.get_dataset("imagenet").classes())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from .helpers import write_pickle_cifar

    tmp = tmp_path_factory.mktemp("tiny")
    data = write_pickle_cifar(tmp / "c10", per_batch=40, test=60)
    cfg = TrainConfig(
        ModelConfig("cifar_resnet8"),
        DataConfig(str(data), download=False),
        OptimConfig(batch_size=32, iterations=6),
        RunConfig(out=str(tmp / "run"), device="cpu", progress="none", tensorboard=False),
    )
    import os

    os.environ["RESLEARN_CACHE_DIR"] = str(tmp / "cache")
    return train(cfg)


def test_onnx_and_torchscript_give_the_same_logits(tiny_run, tmp_path):
    import onnxruntime as ort

    model, _, _ = reslearn.load(tiny_run)
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
    assert cli_main(["export", str(tiny_run), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for n in (5, 2):  # a dynamic batch dimension
        got = sess.run(None, {"image": x[:n].numpy()})[0]
        assert abs(got - ref[:n].numpy()).max() < 1e-4
    assert (
        cli_main(["export", str(tiny_run), "--format", "torchscript", "--out", str(tmp_path / "m.ts")]) == 0
    )
    ts = torch.jit.load(str(tmp_path / "m.ts"))
    with torch.no_grad():
        assert (ts(x) - ref).abs().max() < 1e-4


def test_safetensors_round_trip_needs_no_pickle(tiny_run, tmp_path, monkeypatch):
    out = tmp_path / "m.safetensors"
    assert cli_main(["export", str(tiny_run), "--format", "safetensors", "--out", str(out)]) == 0
    model, pre, classes = reslearn.load(tiny_run)

    def no_pickle(*a, **k):
        raise AssertionError("safetensors loading must not unpickle")

    monkeypatch.setattr(torch, "load", no_pickle)
    model2, pre2, classes2 = reslearn.load(out)
    img = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(model(pre(img)[None]), model2(pre2(img)[None]))
    assert classes == classes2


def test_safetensors_export_is_byte_reproducible(tiny_run, tmp_path):
    """The same run exported again is the same file (a published net's sha256 can be re-made):
    safetensors orders several metadata entries differently from one export to the next."""
    digests = set()
    for i in range(5):
        out = tmp_path / f"m{i}.safetensors"
        assert cli_main(["export", str(tiny_run), "--format", "safetensors", "--out", str(out)]) == 0
        digests.add(hashlib.sha256(out.read_bytes()).hexdigest())
    assert len(digests) == 1, digests


def test_hub_entry_points_build_every_registered_model():
    import sys

    sys.path.insert(0, str(ROOT))
    import hubconf

    for name in reslearn.list_models():
        if name in ("resnet1202", "resnet152", "plain152"):
            continue  # built by the test below once; slow to build twice
        m = getattr(hubconf, name)()
        spec = reslearn.get_model_spec(name)
        assert isinstance(m, reslearn.ResNet) and m.fc.out_features == spec.num_classes
    m = torch.hub.load(str(ROOT), "resnet152", source="local", num_classes=7)
    assert m.fc.out_features == 7
    from reslearn import published

    unpublished = next(n for n in reslearn.list_models() if published.for_model(n) is None)
    with pytest.raises(ValueError, match=f"no trained {unpublished} is published yet"):
        getattr(hubconf, unpublished)(pretrained=True)
    assert hubconf.resnet1202 is not None


def test_torchvision_import_round_trip(tmp_path, shared_data, capsys):
    """torchvision weights (random) -> reslearn checkpoint: the same logits as torchvision's
    own forward with its own transforms, and usable by eval (all views) and export."""
    torch.manual_seed(3)
    tv = torchvision.models.resnet18().eval()
    with torch.no_grad():
        for m in tv.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    ckpt = tmp_path / "r18.pt"
    assert (
        cli_main(["import-torchvision", str(tmp_path / "tv.pth"), "--model", "resnet18", "--out", str(ckpt)])
        == 0
    )
    capsys.readouterr()
    model, preprocess, classes = reslearn.load(ckpt)
    assert classes[1] == "goldfish" and len(classes) == 1000
    tv_transforms = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.transforms()
    photo = sorted((shared_data / "imagenet-samples").glob("*.JPEG"))[0]
    img = torchvision.io.decode_image(str(photo), mode=torchvision.io.ImageReadMode.RGB)
    with torch.no_grad():
        ours = model(preprocess(img)[None])
        theirs = tv(tv_transforms(img)[None])
    assert (ours - theirs).abs().max() < 1e-5
    # eval with every view on an ImageNet-layout folder of two classes of the samples
    val = tmp_path / "inet" / "val"
    for p in sorted((shared_data / "imagenet-samples").glob("*.JPEG"))[:2]:
        wnid = p.name.split("_")[0]
        (val / wnid).mkdir(parents=True)
        shutil.copy(p, val / wnid / p.name)
    (tmp_path / "inet" / "train").mkdir()
    for views in ("single", "10crop", "multiscale"):
        argv = ["eval", str(ckpt), "--data-dir", str(tmp_path / "inet"), "--views", views, "--json"]
        assert cli_main(argv + ["--device", "cpu", "--workers", "1"]) == 0
        res = json.loads(capsys.readouterr().out)
        assert res["images"] == 2 and res["views"] == views
    assert (
        cli_main(["export", str(ckpt), "--format", "safetensors", "--out", str(tmp_path / "r18.safetensors")])
        == 0
    )


def test_complexity_takes_the_shapes_other_tools_use():
    m = reslearn.create_model("resnet50")
    ref = reslearn.complexity(m, (224, 224))
    assert reslearn.complexity(m, (3, 224, 224)) == ref == reslearn.complexity(m, (8, 3, 224, 224))
    with pytest.raises(ValueError, match="3 channels"):
        reslearn.complexity(m, (1, 224, 224))


def test_a_published_net_loads_by_name_and_through_hub_with_its_sha256_checked(
    tiny_run, tmp_path, monkeypatch, capsys
):
    import importlib.util
    import sys

    from reslearn import files, published
    from reslearn.checkpoint import CheckpointError

    path = ROOT / "benchmarks" / "studies" / "publish_net.py"
    spec = importlib.util.spec_from_file_location("publish_net", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    weights = tmp_path / "weights"
    monkeypatch.setattr(published, "WEIGHTS_DIR", weights)
    # The weights folder lies inside the installed package, where reslearn's commands write
    # nothing (issue 32): publishing, the one writer there, must still work.
    monkeypatch.setattr(files, "__file__", str(weights / "files.py"))
    entry = tool.publish(tiny_run, "tiny-cifar10", weights, note="120 iterations on tiny data")
    assert entry["data"].startswith("cifar") or "/" not in entry["data"]  # no path of this machine
    assert entry["sha256"] == published.sha256(weights / "tiny-cifar10.safetensors")
    with pytest.raises(ValueError, match="already published"):
        tool.publish(tiny_run, "tiny-cifar10", weights)
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    ours, pre, classes = reslearn.load(tiny_run)
    named, pre2, classes2 = reslearn.load("tiny-cifar10")
    batch = torch.stack([pre(i) for i in x])
    assert classes2 == classes and torch.equal(named(batch), ours(batch))
    assert cli_main(["zoo"]) == 0
    assert f"tiny-cifar10: {entry['model']}, test top-1 error {entry['test_err']:.2f}%" in (
        listed := capsys.readouterr().out
    )
    assert "\n  120 iterations on tiny data" in listed
    assert f"--model {entry['model']} --init tiny-cifar10" in listed  # how to use one
    sys.path.insert(0, str(ROOT))
    import hubconf

    hub = hubconf._entry(entry["model"])(pretrained=True)  # what every hub entry point runs
    assert torch.equal(hub(batch), ours(batch))
    blob = bytearray((weights / "tiny-cifar10.safetensors").read_bytes())
    blob[-1] ^= 1  # one flipped bit in the weights
    (weights / "tiny-cifar10.safetensors").write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="does not match its published sha256"):
        reslearn.load("tiny-cifar10")
    with pytest.raises(ValueError, match="no published net called 'nope'"):
        published.published_file("nope")


def test_every_command_that_reads_a_net_takes_an_export_or_a_published_name(
    tiny_run, tmp_path, monkeypatch, capsys
):
    """eval and export read what load and predict read: a run, a .safetensors export, a
    published net's name; eval reports the same error for each, and --per-class of a
    published net writes into the current folder, not into the installed package."""
    from .helpers import publish_in

    weights = tmp_path / "weights"
    f = publish_in(weights, tiny_run, "tiny", monkeypatch)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    results = []
    for source in (str(tiny_run), str(f), "tiny"):
        assert cli_main(["eval", source, "--json"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    assert results[0] == results[1] == results[2] and results[0]["iteration"] == 6
    assert cli_main(["export", "tiny", "--format", "safetensors", "--out", "again.safetensors"]) == 0
    assert (tmp_path / "again.safetensors").read_bytes() == f.read_bytes()  # byte for byte
    assert cli_main(["eval", "tiny", "--per-class"]) == 0
    assert (tmp_path / "confusion.json").is_file() and not (weights / "confusion.json").exists()


def _published():
    from reslearn import published

    return [e["name"] for e in published.index()]


@pytest.mark.parametrize("name", _published())
def test_each_published_net_loads_verified_and_classifies_real_test_images(name, cifar10):
    """The nets shipped in src/reslearn/weights: each loads by name (its sha256 checked
    against the index) and classifies original CIFAR-10 test images it never trained on:
    the first 20 of each class in the official test_batch, where a net with its published
    error (about 10%) errs on a few and a damaged or mislabelled one on most (chance: 90%)."""
    from reslearn import published
    from reslearn.data.cifar import PICKLE_DIR, read_pickle

    entry = published.find(name)
    model, preprocess, classes = reslearn.load(name)
    a = read_pickle(cifar10 / PICKLE_DIR)
    assert tuple(classes) == a.classes
    pick = torch.cat([(a.test_y == c).nonzero()[:20, 0] for c in range(10)])
    batch = torch.stack([preprocess(img) for img in a.test_x[pick]])
    with torch.no_grad():
        predicted = model(batch).argmax(1)
    err = 100 * (predicted != a.test_y[pick]).float().mean().item()
    assert err < max(30.0, 2 * entry["test_err"]), f"{name}: {err:.1f}% wrong of {len(pick)}"


def test_the_readme_zoo_table_lists_every_published_net_with_its_measured_error():
    """The README's model zoo table is what users read first: each net in
    weights/index.json has a row there with the error the index records, and the table
    names no net the index lacks (a row left behind when a net is renamed or withdrawn)."""
    from reslearn import published

    text = (ROOT / "README.md").read_text()
    section = text[text.index("**Trained nets.**") :]  # the model zoo's published nets
    section = section[: section.index("\n## ")]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 3 and cells[0].startswith("`") and cells[0].endswith("`"):
            rows[cells[0].strip("`")] = cells
    entries = {e["name"]: e for e in published.index()}
    assert set(rows) == set(entries), f"README rows {sorted(rows)} vs published {sorted(entries)}"
    for name, e in entries.items():
        assert rows[name][1] == e["model"] and rows[name][3] == f"{e['test_err']:.2f}", (name, rows[name])
        original = e.get("test_err_original", e["test_err"])  # a net trained on the originals: the same
        assert rows[name][4] == f"{original:.2f}", (name, rows[name])


def test_hub_prefers_a_net_trained_on_the_original_cifar10(tmp_path, monkeypatch, capsys):
    """pretrained=True gives the best net on the original CIFAR-10 (issue 31): one trained
    on the originals before one trained on the JPEG copy, whatever the copy's own test set
    said; among copies, the lower error on the original test set."""
    from reslearn import published

    jpeg, orig = "imagefolder:cifar10-jpeg", "pickle:cifar-10-batches-py"
    nets = [
        {"name": "a-jpeg", "model": "resnet20", "test_err": 9.0, "test_err_original": 11.6, "data": jpeg},
        {"name": "b-orig", "model": "resnet20", "test_err": 10.5, "data": orig},
        {"name": "c-jpeg", "model": "resnet56", "test_err": 9.0, "test_err_original": 12.0, "data": jpeg},
        {"name": "d-jpeg", "model": "resnet56", "test_err": 11.0, "test_err_original": 10.2, "data": jpeg},
    ]  # fmt: skip
    more = {"sha256": "0" * 64, "split": "test", "iteration": 64000, "bytes": 10**6}
    nets = [{**e, "file": f"{e['name']}.safetensors", **more} for e in nets]
    (tmp_path / "index.json").write_text(json.dumps({"nets": nets}))
    assert published.for_model("resnet20", tmp_path)["name"] == "b-orig"
    assert published.for_model("resnet56", tmp_path)["name"] == "d-jpeg"
    assert published.for_model("resnet110", tmp_path) is None
    # `reslearn zoo` lists them in that order too: the originals first, then by original-test error.
    monkeypatch.setattr(published, "WEIGHTS_DIR", tmp_path)
    assert cli_main(["zoo"]) == 0
    listed = [line.split(":")[0] for line in capsys.readouterr().out.splitlines() if line[:1].isalpha()]
    assert listed[:4] == ["b-orig", "d-jpeg", "a-jpeg", "c-jpeg"], listed


def test_an_export_format_is_one_registry_entry(tiny_run, tmp_path, capsys):
    """Issue 33: a format is an ExportFormat registered in this file alone; reslearn export
    offers it (--format), writes it atomically, and --overwrite replaces only its own kind."""
    import io

    import numpy as np

    from reslearn import files, use

    def npz(ckpt, model, example):
        buf = io.BytesIO()
        np.savez(buf, **{k: v.numpy() for k, v in model.state_dict().items()})
        return buf.getvalue()

    use.register_export_format(use.ExportFormat("npz", npz, lambda p: p.read_bytes()[:2] == b"PK", "an npz"))
    try:
        out = tmp_path / "w.npz"
        assert cli_main(["export", str(tiny_run), "--format", "npz", "--out", str(out)]) == 0
        assert "conv1.weight" in np.load(out).files
        assert cli_main(["export", str(tiny_run), "--format", "npz", "--out", str(out), "--overwrite"]) == 0
        (tmp_path / "mine.npz").write_text("not an npz")
        argv = [
            "export",
            str(tiny_run),
            "--format",
            "npz",
            "--out",
            str(tmp_path / "mine.npz"),
            "--overwrite",
        ]
        assert cli_main(argv) == 2 and "is not an npz" in capsys.readouterr().err
    finally:
        del use.EXPORT_FORMATS["npz"], files.OUTPUT_KINDS["npz"]
