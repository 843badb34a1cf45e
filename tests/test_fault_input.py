"""Faults, done for real: bad configuration and bad data, named before anything is written."""

import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from reslearn.cli import main as cli_main
from reslearn.data import load_cifar10
from reslearn.data.cifar import write_pickle_batch
from reslearn.data.imagefiles import DataError
from reslearn.train import train

from .helpers import train_cfg, write_imagefolder, write_pickle_cifar


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--model", "resnet5O"], "unknown model 'resnet5O'; did you mean .*resnet50"),
        (["--model", "cifar_resnet21"], "6n\\+2"),
        (["--model", "plain20", "--shortcut", "B"], "plain net and has no shortcuts"),
        (["--iterations", "0"], "iterations must be a positive integer, got 0"),
        (["--iterations", "-5"], "got -5"),
        (["--epochs", "0"], "epochs must be a positive integer, got 0"),
        (["--batch-size", "0"], "batch_size must be a positive integer, got 0"),
        (["--batch-size", "500"], "batch_size=500 exceeds the 200 training images"),
        (["--device", "tpu"], "'tpu'"),
        (["--device", "cuda:7"], "cuda:7"),
    ],
)
def test_bad_configuration_is_named_before_anything_is_written(tiny_data, tmp_path, capsys, argv, message):
    out = tmp_path / "never"
    base = [
        "train",
        "--model",
        "cifar_resnet8",
        "--data-dir",
        str(tiny_data),
        "--no-download",
        "--batch-size",
        "32",
        "--iterations",
        "4",
        "--device",
        "cpu",
        "--progress",
        "none",
        "--out",
        str(out),
    ]
    if "--epochs" in argv:
        base.remove("--iterations")
        base.remove("4")
    assert cli_main(base + argv) == 2

    assert re.search(message, capsys.readouterr().err)
    assert not out.exists()


def test_missing_or_empty_data_directory(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for d in (tmp_path / "nope", tmp_path / "empty"):
        argv = [
            "train",
            "--model",
            "cifar_resnet8",
            "--data-dir",
            str(d),
            "--no-download",
            "--out",
            str(tmp_path / "o"),
        ]
        assert cli_main(argv) == 2
        assert f"no CIFAR-10 data in '{d}'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_classes_and_weights_that_do_not_fit_the_checkpoint(tiny_data, tmp_path, capsys):
    run = train(train_cfg(tiny_data, tmp_path / "r", iterations=6))
    three = write_imagefolder(tmp_path / "three", per_class=3)
    assert cli_main(["eval", str(run), "--data-dir", str(three)]) == 2
    assert "has 3 classes, the model 10" in capsys.readouterr().err
    raw = torch.load(run / "last.pt", weights_only=True)
    raw["model"]["extra.weight"] = torch.zeros(1)
    del raw["model"]["fc.bias"]
    raw.pop("digest")
    torch.save(raw, tmp_path / "mismatch.pt")
    assert cli_main(["eval", str(tmp_path / "mismatch.pt")]) == 2
    err = capsys.readouterr().err
    assert "missing ['fc.bias']" in err and "unexpected ['extra.weight']" in err


def test_bad_cifar_data_is_named(tmp_path):
    root = write_imagefolder(tmp_path / "f", per_class=3)
    (root / "train" / "cat" / "0.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match="cannot read image .*cat/0.jpg"):
        load_cifar10(root, download=False)
    root = write_imagefolder(tmp_path / "g", per_class=3)
    Image.new("RGB", (40, 40)).save(root / "train" / "dog" / "9.png")
    with pytest.raises(DataError, match="differ in size.*dog/9.png.*40x40"):
        load_cifar10(root, download=False)
    root = write_imagefolder(tmp_path / "h", per_class=3)
    for p in (root / "train" / "frog").iterdir():
        p.unlink()
    with pytest.raises(DataError, match="class folder .*frog' holds no images"):
        load_cifar10(root, download=False)
    pk = write_pickle_cifar(tmp_path / "p", per_batch=4, test=4) / "cifar-10-batches-py"
    write_pickle_batch(pk / "data_batch_2", np.zeros((4, 3, 32, 32), np.uint8), [0, 1, 12, 3])
    with pytest.raises(DataError, match="data_batch_2.*label 12 is outside 0..9"):
        load_cifar10(pk.parent, download=False)
    import pickle

    with open(pk / "data_batch_2", "wb") as f:
        pickle.dump({"data": np.zeros((4, 100), np.uint8), "labels": [0, 1, 2, 3]}, f)
    with pytest.raises(DataError, match="data_batch_2.*shape \\(4, 100\\)"):
        load_cifar10(pk.parent, download=False)
    shutil.rmtree(tmp_path / "p")


def test_provenance_names_the_path_given(tmp_path):
    """A decoded-data cache built through one path and read through another (a link to the
    same files) reports the path this run was given."""
    real = write_imagefolder(tmp_path / "real", per_class=3)
    link = tmp_path / "link"
    link.symlink_to(real)
    assert load_cifar10(real, download=False).source == f"imagefolder:{real}"
    assert load_cifar10(link, download=False).source == f"imagefolder:{link}"
