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
from PIL import Image

import reslearn
from reslearn.checkpoint import load_checkpoint
from reslearn.cli import main as cli_main
from reslearn.data import DATASETS, DataError, DataSet, register_dataset
from reslearn.data import cifar as cifar_mod
from reslearn.data.cifar import CIFAR100_ARCHIVE, CifarArrays, download_cifar, load_cifar, write_pickle_batch
from reslearn.data.datasets import detect_dataset, resize_to
from reslearn.data.device import DeviceData, TensorEvalSet
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


def stripes_eval(data_dir, options, classes, *, view, batch_size, workers, device):
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
        inference_view=resize_to,
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
