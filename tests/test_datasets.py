"""The data-set registry: a data set defined in this file alone (no edit anywhere in
reslearn) trains, resumes, evaluates, predicts and exports like a built-in one."""

import hashlib
import io
import json
import pickle
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

import reslearn
from reslearn.checkpoint import load_checkpoint
from reslearn.cli import main as cli_main
from reslearn.data import DATASETS, DataError, DataSet, register_dataset
from reslearn.data import cifar as cifar_mod
from reslearn.data.cifar import CIFAR100_ARCHIVE, CifarArrays, download_cifar, load_cifar, write_pickle_batch
from reslearn.data.datasets import detect_dataset, resize_to
from reslearn.data.device import DeviceData, TensorEvalSet
from reslearn.data.imagefiles import decode_rgb
from reslearn.evaluate import evaluate_checkpoint
from reslearn.train import read_metrics, train

from .helpers import rows, synthetic_images, train_cfg

STRIPES = ("horizontal", "vertical", "dots")
MARKER = "stripes.json"  # the folder of this data set holds only its size and seed


def stripes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n noisy 32x32 images of three easy patterns, and their labels."""
    g = np.random.default_rng(seed)
    y = g.integers(0, 3, n)
    i = np.arange(32)
    pats = [
        np.add.outer(i % 4 < 2, 0 * i),
        np.add.outer(0 * i, i % 4 < 2),
        np.add.outer(i % 8 < 4, i % 8 < 4) == 2,
    ]
    x = np.stack([pats[k] for k in y]).astype(float)[:, None] * 160 + g.normal(40, 20, (n, 3, 32, 32))
    return torch.from_numpy(np.clip(x, 0, 255).astype(np.uint8)), torch.from_numpy(y.astype(np.int64))


def read_stripes(root) -> CifarArrays:
    spec = json.loads((Path(root) / MARKER).read_text())
    tx, ty = stripes(spec["train"], spec["seed"])
    vx, vy = stripes(spec["test"], spec["seed"] + 1)
    return CifarArrays(tx, ty, vx, vy, STRIPES, f"stripes:{root}", "stripes")


def stripes_train(d, *, recipe, **common):
    return DeviceData(read_stripes(d.data_dir), val_split=d.val_split, normalize=d.normalize, **common)


def stripes_eval(data_dir, options, classes, *, view, recipe, batch_size, workers, device):
    a = read_stripes(data_dir)
    return TensorEvalSet("test", a.test_x.to(device), a.test_y.to(device), batch_size, source=a.source)


@pytest.fixture
def stripes_dir(tmp_path):
    entry = DataSet(
        name="stripes",
        recipe="cifar",
        default_dir="./data/stripes",
        detect=lambda root: (root / MARKER).is_file(),
        train_data=stripes_train,
        eval_split=stripes_eval,
        inference_view=lambda x, size, recipe: resize_to(x, size),
        classes=lambda: STRIPES,
    )
    register_dataset(entry)
    root = tmp_path / "stripes"
    root.mkdir()
    (root / MARKER).write_text(json.dumps({"train": 256, "test": 96, "seed": 3}))
    yield root
    DATASETS.pop("stripes")


def test_a_data_set_registered_in_a_test_trains_resumes_evaluates_predicts_exports(
    stripes_dir, tmp_path, capsys
):
    assert detect_dataset(stripes_dir).name == "stripes"  # "auto" finds it from the folder
    cfg = train_cfg(stripes_dir, tmp_path / "run", iterations=24, batch=32)
    assert cfg.data.dataset == "auto"
    # Interrupted at 12 and resumed: the same numbers as the run in one go.
    run = train(cfg, stop_after=12)
    train(resume=run)
    whole = train(train_cfg(stripes_dir, tmp_path / "whole", iterations=24, batch=32))
    assert rows(run) == rows(whole)
    saved = json.loads((run / "config.json").read_text())
    assert saved["data"]["dataset"] == "stripes" and saved["optim"]["recipe"] == "cifar"
    last = read_metrics(run)[-1]
    assert last["test_err"] < 50.0  # three easy patterns: far better than chance (66.7%)

    res = evaluate_checkpoint(run, device="cpu")
    assert res["data"] == f"stripes:{stripes_dir}" and res["images"] == 96
    assert res["top1_err"] == pytest.approx(last["test_err"], abs=1e-9)

    x, y = stripes(6, seed=4)
    for i, img in enumerate(x):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(tmp_path / f"{i}.png")
    assert cli_main(["predict", str(run), *(str(tmp_path / f"{i}.png") for i in range(6)), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {r["top_k"][0]["class"] for r in out} <= set(STRIPES)

    model, preprocess, classes = reslearn.load(run)
    assert classes == list(STRIPES)
    assert preprocess(x[0]).shape == (3, 32, 32)
    assert (
        cli_main(["export", str(run), "--format", "safetensors", "--out", str(tmp_path / "s.safetensors")])
        == 0
    )
    m2, p2, c2 = reslearn.load(tmp_path / "s.safetensors")
    batch = torch.stack([preprocess(im) for im in x])
    assert c2 == classes and torch.equal(m2(batch), model(batch))


def test_unknown_data_set_is_one_clear_error(tiny_data, tmp_path, capsys):
    code = cli_main(
        ["train", "--data-dir", str(tiny_data), "--dataset", "nope", "--out", str(tmp_path / "r")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "unknown data set 'nope'" in err and "cifar10" in err
    assert not (tmp_path / "r").exists()


def test_a_checkpoint_from_another_machine_is_tested_on_the_default_folder_never_its_own(
    tiny_data, tmp_path, monkeypatch, capsys
):
    """A checkpoint names the folder it was trained from (a published net: our machine's).
    Where that folder is absent, eval looks in the default ./data/cifar10, as train would,
    says so, and never creates the trainer's path."""
    run = train(train_cfg(tiny_data, tmp_path / "run", iterations=6, batch=16))
    expected = evaluate_checkpoint(run, device="cpu")
    moved = tmp_path / "here"
    (moved / "data").mkdir(parents=True)
    tiny_data.rename(moved / "data" / "cifar10")
    monkeypatch.chdir(moved)
    capsys.readouterr()
    res = evaluate_checkpoint(run, device="cpu")
    assert f"{str(tiny_data)!r}, where this net's data was, is not here" in capsys.readouterr().err
    assert res["top1_err"] == expected["top1_err"] and res["images"] == 60
    assert "data/cifar10" in res["data"] and not tiny_data.exists()

    monkeypatch.chdir(tmp_path)  # no default folder either: the error names where it looked
    code = cli_main(["eval", str(run), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "'data/cifar10'" in err and not tiny_data.exists()


# ---------------------------------------------------------------- CIFAR-100
def write_cifar100(root: Path, n_train: int = 64, n_test: int = 32) -> Path:
    """A tiny archive in the real format: cifar-100-python/{train,test,meta}, fine labels
    0..99 and coarse labels fine // 5 (synthetic images, the real keys)."""
    d = root / "cifar-100-python"
    d.mkdir(parents=True)
    for name, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        x, _ = synthetic_images(n, seed)
        fine = [(i * 37 + seed) % 100 for i in range(n)]
        write_pickle_batch(d / name, x, None, fine_labels=fine, coarse_labels=[f // 5 for f in fine])
    meta = {
        "fine_label_names": [f"fine{i:02d}" for i in range(100)],
        "coarse_label_names": [f"coarse{i:02d}" for i in range(20)],
    }
    (d / "meta").write_bytes(pickle.dumps(meta))
    return root


def test_cifar100_downloads_verified_and_trains_every_cifar_net_with_100_or_20_outputs(tmp_path, capsys):
    src = write_cifar100(tmp_path / "src")
    blob = io.BytesIO()
    with tarfile.open(fileobj=blob, mode="w:gz") as tar:
        tar.add(src / "cifar-100-python", arcname="cifar-100-python")
    (tmp_path / "a.tar.gz").write_bytes(blob.getvalue())
    dest = tmp_path / "c100"
    with pytest.raises(DataError, match="corrupt or truncated"):
        download_cifar(dest, CIFAR100_ARCHIVE, url=(tmp_path / "a.tar.gz").as_uri(), md5="0" * 32)
    md5 = hashlib.md5(blob.getvalue()).hexdigest()
    download_cifar(dest, CIFAR100_ARCHIVE, url=(tmp_path / "a.tar.gz").as_uri(), md5=md5)
    assert detect_dataset(dest).name == "cifar100"

    run = train(train_cfg(dest, tmp_path / "fine", iterations=4, batch=16))
    ckpt = load_checkpoint(run)
    assert ckpt.config["data"]["dataset"] == "cifar100" and ckpt.config["optim"]["recipe"] == "cifar"
    assert ckpt.classes == [f"fine{i:02d}" for i in range(100)] and ckpt.model["fc.weight"].shape[0] == 100
    assert evaluate_checkpoint(run, device="cpu")["images"] == 32

    cfg = train_cfg(dest, tmp_path / "coarse", iterations=4, batch=16, model="cifar_plain8")
    run = train(cfg.replace({"data.labels": "coarse"}))
    ckpt = load_checkpoint(run)
    assert ckpt.classes == [f"coarse{i:02d}" for i in range(20)] and ckpt.model["fc.weight"].shape[0] == 20
    code = cli_main(
        [
            "train",
            "--data-dir",
            str(tiny_data_dir(tmp_path)),
            "--labels",
            "coarse",
            "--no-download",
            "--out",
            str(tmp_path / "bad"),
            "--device",
            "cpu",
        ]
    )
    assert code == 2 and "data.labels='coarse': CIFAR-10 has fine labels" in capsys.readouterr().err


def tiny_data_dir(tmp_path):
    from .helpers import write_pickle_cifar

    return write_pickle_cifar(tmp_path / "c10", per_batch=8, test=8)


def test_cifar100_offline_names_its_archive_and_layout(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(cifar_mod.urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as e:
        load_cifar(tmp_path / "none", archive=CIFAR100_ARCHIVE)
    msg = str(e.value)
    assert CIFAR100_ARCHIVE.url in msg and "cifar-100-python" in msg and "--data-dir" in msg


# ---------------------------------------------------------------- any folder of images
def write_photo_folder(root: Path, sizes, per_class=10, classes=("ant", "bee", "cow"), val=False) -> Path:
    """train/<class>/ (and val/<class>/) images of the given (w, h) sizes in every mode a
    user's folder holds: RGB, greyscale, RGBA, palette, CMYK, 16-bit greyscale PNG."""
    modes = ["RGB", "L", "RGBA", "P", "CMYK", "I;16"]
    for split, n in (("train", per_class), ("val", per_class // 2)) if val else (("train", per_class),):
        for c, name in enumerate(classes):
            (root / split / name).mkdir(parents=True)
            x, _ = synthetic_images(n, seed=c + 10 * (split == "val"), classes=1)
            for i, img in enumerate(x):
                w, h = sizes[i % len(sizes)]
                im = Image.fromarray(np.roll(img, 60 * c, axis=0).transpose(1, 2, 0)).resize((w, h))
                mode = modes[i % len(modes)]
                if mode == "I;16":
                    im = Image.fromarray(np.asarray(im.convert("L"), dtype=np.uint16) * 257)
                else:
                    im = im.convert(mode)
                im.save(root / split / name / f"{i}.{'jpg' if mode == 'CMYK' else 'png'}")
    return root


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path):
    a = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    Image.fromarray(a).save(tmp_path / "g16.png")
    x = decode_rgb(tmp_path / "g16.png")
    assert x.shape == (3, 8, 8) and torch.equal(x[0], x[2])
    assert x[0].flatten().tolist() == [round(v * 1000 * 255 / 65535) for v in range(64)]


def test_a_folder_of_small_images_trains_cifar_style_at_its_size_with_a_stratified_holdout(tmp_path, capsys):
    root = write_photo_folder(tmp_path / "bugs", sizes=[(24, 24), (20, 24)], per_class=20)
    out = tmp_path / "run"
    argv = ["train", "--data-dir", str(root), "--model", "resnet18", "--iterations", "4", "--batch-size", "8"]
    assert (
        cli_main([*argv, "--out", str(out), "--device", "cpu", "--progress", "log", "--no-tensorboard"]) == 0
    )
    log = capsys.readouterr().out
    assert "folder:" in log and "the CIFAR pipeline at 24x24" in log
    assert "val: 6 images (10%) held out of train/, stratified, by a hash of each file's name" in log
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["data"]["dataset"], cfg["optim"]["recipe"], cfg["data"]["image_size"]) == (
        "folder",
        "cifar",
        24,
    )
    assert read_metrics(out)[-1]["val_err"] is not None and "test_err" not in read_metrics(out)[-1]
    res = evaluate_checkpoint(out, device="cpu")
    assert res["split"] == "val" and res["images"] == 6  # the same held-out images: 2 a class
    assert res["top1_err"] == pytest.approx(read_metrics(out)[-1]["val_err"], abs=1e-9)
    model, preprocess, classes = reslearn.load(out)
    assert classes == ["ant", "bee", "cow"]
    with Image.open(root / "train" / "bee" / "3.png") as im:
        assert preprocess(im).shape == (3, 24, 24)


def test_a_folder_of_photos_without_val_takes_the_imagenet_pipeline(tmp_path, capsys):
    root = write_photo_folder(tmp_path / "pics", sizes=[(120, 90), (96, 128)], per_class=8)
    cfg = train_cfg(root, tmp_path / "run", iterations=2, batch=6, model="resnet18")
    run = train(cfg.replace({"data.image_size": 32, "data.val_split": 0.25}))
    saved = json.loads((run / "config.json").read_text())
    assert (saved["data"]["dataset"], saved["optim"]["recipe"]) == ("folder", "imagenet")
    res = evaluate_checkpoint(run, device="cpu", views="10crop")
    assert res["images"] == 6 and res["split"] == "val"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda r: (r / "val" / "zebra").mkdir(parents=True), "class 'zebra' is in"),
        (lambda r: (r / "train" / "empty").mkdir(), "holds no images"),
    ],
)
def test_bad_folders_are_named(tmp_path, make, message):
    root = write_photo_folder(tmp_path / "f", sizes=[(24, 24)], per_class=6, val=True)
    make(root)
    with pytest.raises(DataError, match=message):
        train(train_cfg(root, tmp_path / "run", iterations=2, batch=6))
    assert not (tmp_path / "run").exists()


def test_finetune_resnet18_from_a_checkpoint_on_a_folder_it_never_saw(tmp_path, capsys):
    """The issue's command: train --data-dir FOLDER --model resnet18 --init r18.pt --freeze-to layer3."""
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "tv.pth")
    assert (
        cli_main(
            [
                "import-torchvision",
                str(tmp_path / "tv.pth"),
                "--model",
                "resnet18",
                "--out",
                str(tmp_path / "r18.pt"),
            ]
        )
        == 0
    )
    root = write_photo_folder(tmp_path / "pics", sizes=[(120, 90), (96, 128)], per_class=8)
    run = tmp_path / "ft"
    base = ["train", "--data-dir", str(root), "--model", "resnet18", "--init", str(tmp_path / "r18.pt")]
    base += [
        "--freeze-to",
        "layer3",
        "--image-size",
        "32",
        "--batch-size",
        "6",
        "--eval-every",
        "2",
        "--device",
        "cpu",
    ]
    base += ["--out", str(run), "--no-tensorboard", "--progress", "log"]
    assert cli_main([*base, "--iterations", "2"]) == 0
    assert cli_main(["train", "--resume", str(run), "--iterations", "4"]) == 0
    log = capsys.readouterr().out
    assert "replaced (new, freshly initialised): fc.bias, fc.weight" in log and "layer3" in log
    assert cli_main(["eval", str(run), "--per-class"]) == 0
    assert "ant" in capsys.readouterr().out and (run / "confusion.png").is_file()
    assert cli_main(["predict", str(run), str(root / "train" / "cow"), "--json"]) == 0
    assert {r["top_k"][0]["class"] for r in json.loads(capsys.readouterr().out)} <= {"ant", "bee", "cow"}
    assert (
        cli_main(["export", str(run), "--format", "safetensors", "--out", str(tmp_path / "ft.safetensors")])
        == 0
    )
    assert reslearn.load(tmp_path / "ft.safetensors")[2] == ["ant", "bee", "cow"]


def test_an_unreadable_small_image_is_named_and_fatal_or_skipped(tmp_path, capsys):
    root = write_photo_folder(tmp_path / "f", sizes=[(24, 24)], per_class=10)
    (root / "train" / "bee" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="broken.png"):
        train(train_cfg(root, tmp_path / "a", iterations=2, batch=6))
    run = train(
        train_cfg(root, tmp_path / "b", iterations=2, batch=6).replace({"data.skip_bad_images": True})
    )
    assert "skipped cannot read image" in capsys.readouterr().err and (run / "final.json").is_file()


def test_your_own_folder_gets_a_batch_it_can_fill_and_a_run_in_epochs(tmp_path):
    from reslearn import get_model_spec
    from reslearn.train.config import DataConfig, ModelConfig, TrainConfig
    from reslearn.train.recipes import resolve

    root = write_photo_folder(tmp_path / "f", sizes=[(24, 24)], per_class=20)  # 54 training images
    cfg = resolve(TrainConfig(ModelConfig("resnet18"), DataConfig(str(root))), get_model_spec("resnet18"))
    assert (cfg.optim.batch_size, cfg.optim.epochs, cfg.optim.iterations) == (32, 30, None)
    given = TrainConfig(ModelConfig("resnet18"), DataConfig(str(root))).replace({"optim.iterations": 7})
    assert resolve(given, get_model_spec("resnet18")).optim.iterations == 7


def test_photos_in_train_and_val_with_your_class_names_are_a_folder_and_wnids_are_imagenet(tmp_path):
    from .helpers import write_imagenet_folder

    mine = write_photo_folder(tmp_path / "mine", sizes=[(120, 90)], per_class=10, val=True)
    assert detect_dataset(mine).name == "folder"  # 30 epochs, a batch that fits: not ImageNet's 256
    assert detect_dataset(write_imagenet_folder(tmp_path / "inet")).name == "imagenet"
    small = write_photo_folder(tmp_path / "small", sizes=[(24, 24)], per_class=10, val=True)
    assert detect_dataset(small).name == "folder"


def test_a_folder_hold_out_barely_moves_when_images_are_added(tmp_path):
    """Issue 32: the hold-out is chosen by a hash of each file's name, so adding images to
    a class moves at most as many of its old images across (a new one takes a held-out
    place, plus the one place more a larger class may get), where a shuffle by position
    would redraw the whole split. Saved runs from before keep their seeded split."""
    import shutil

    from reslearn.data.folder import folder_splits, legacy_options

    root = write_photo_folder(tmp_path / "bugs", sizes=[(24, 24)], per_class=20)
    before = folder_splits(root, 0.25)
    for c in ("ant", "bee", "cow"):
        for i in range(3):
            shutil.copy(root / "train" / c / "0.png", root / "train" / c / f"new{i}.png")
    after = folder_splits(root, 0.25)
    for label, c in enumerate(after.classes):
        old = {p for p, y in before.train + before.val if y == label}
        was = {p for p, y in before.val if y == label}
        now = {p for p, y in after.val if y == label} & old
        slots = len([1 for _, y in after.val if y == label]) - len(was)
        assert len(was ^ now) <= 3 + abs(slots), (c, sorted(was ^ now))
    assert legacy_options({"val_split": 0}) == {"val_split": None, "holdout": "seeded"}
    assert legacy_options({"val_split": 0.2, "holdout": "name-hash"})["val_split"] == 0.2
    seeded = folder_splits(root, None, "seeded")
    assert "seed 0" in seeded.how and len(seeded.val) == len(folder_splits(root, None).val)
