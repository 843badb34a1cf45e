"""The data-set registry: a data set defined in this file alone (no edit anywhere in
reslearn) trains, resumes, evaluates, predicts and exports like a built-in one."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import reslearn
from reslearn.cli import main as cli_main
from reslearn.data import DATASETS, DataSet, register_dataset
from reslearn.data.cifar import CifarArrays
from reslearn.data.datasets import detect_dataset, resize_to
from reslearn.data.device import DeviceData, TensorEvalSet
from reslearn.evaluate import evaluate_checkpoint
from reslearn.train import read_metrics, train

from .helpers import rows, train_cfg

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
