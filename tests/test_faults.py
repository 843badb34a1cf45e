"""Faults done for real (issue 11): kills, signals, full and read-only disks, non-finite
losses, damaged checkpoints, bad configuration and bad data."""

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reslearn.cli import main as cli_main
from reslearn.data import load_cifar10
from reslearn.data.cifar import DataError, write_pickle_batch
from reslearn.train import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig, read_metrics, train
from reslearn.train.checkpoint import CheckpointError, load_checkpoint
from reslearn.train.faults import RunError

from .helpers import write_imagefolder, write_pickle_cifar

TIMING = ("images_per_s", "wall_s")
ROOT = Path(__file__).resolve().parent.parent


def rows(run):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(run)]


def cli_args(data, out, iterations=60, checkpoint_every=3, eval_every=12):
    return [
        "train",
        "--model",
        "cifar_resnet8",
        "--data-dir",
        str(data),
        "--no-download",
        "--batch-size",
        "32",
        "--iterations",
        str(iterations),
        "--eval-every",
        str(eval_every),
        "--checkpoint-every",
        str(checkpoint_every),
        "--device",
        "cpu",
        "--progress",
        "log",
        "--no-tensorboard",
        "--amp",
        "off",
        "--out",
        str(out),
    ]


def spawn(args, cache):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RESLEARN_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "reslearn", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def wait_for_training(run: Path, proc, timeout=120):
    """Until the run has written its first metrics row (it is inside the loop)."""
    t0 = time.time()
    while not (run / "metrics.jsonl").exists() or not (run / "metrics.jsonl").read_text():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout
        time.sleep(0.05)


# ---------------------------------------------------------------- kills and signals
def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_run(tiny_data, tmp_path):
    ref = tmp_path / "ref"  # made the same way (a subprocess of one thread): same float sums
    proc = spawn(cli_args(tiny_data, ref), tmp_path / "cache")
    assert proc.wait(timeout=300) == 0
    run, rng, kills = tmp_path / "run", random.Random(7), 0
    for _attempt in range(12):
        args = cli_args(tiny_data, run) + ["--auto-resume"]
        proc = spawn(args, tmp_path / "cache")
        if kills < 3:
            try:
                wait_for_training(run, proc)
            except AssertionError:
                pass
            time.sleep(rng.uniform(0.0, 1.5))
            if proc.poll() is None:
                proc.kill()  # SIGKILL: no handler runs, nothing is flushed
                kills += 1
        proc.communicate(timeout=300)
        if (run / "final.json").exists():
            break
        load_checkpoint(run)  # whatever moment it died at, last.pt is whole
    assert kills >= 2 and (run / "final.json").exists()
    assert rows(run) == rows(ref)
    a, b = load_checkpoint(ref).model, load_checkpoint(run).model
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_sigint_write_a_checkpoint_of_the_current_iteration(tiny_data, tmp_path, sig, code):
    run = tmp_path / "run"
    args = cli_args(tiny_data, run, iterations=200, checkpoint_every=1000, eval_every=6)
    proc = spawn(args, tmp_path / "cache")
    wait_for_training(run, proc)
    time.sleep(0.3)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    ckpt = load_checkpoint(run)
    assert f"at iteration {ckpt.iteration}" in err and f"--resume {run}" in err
    assert 0 < ckpt.iteration < 200  # written at the signal, not at a checkpoint boundary
    # ... and resuming from it continues the run exactly.
    ref = tmp_path / "ref"
    proc = spawn(
        cli_args(tiny_data, ref, iterations=200, checkpoint_every=1000, eval_every=6), tmp_path / "cache"
    )
    assert proc.wait(timeout=300) == 0
    proc = spawn(["train", "--resume", str(run), "--progress", "none"], tmp_path / "cache")
    assert proc.wait(timeout=300) == 0
    assert rows(run) == rows(ref)


def test_a_second_signal_stops_at_once(tiny_data, tmp_path):
    run = tmp_path / "run"
    proc = spawn(
        cli_args(tiny_data, run, iterations=100000, checkpoint_every=100000, eval_every=50), tmp_path / "c"
    )
    wait_for_training(run, proc)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode != 0


# ---------------------------------------------------------------- disks
def _cfg(data, out, iterations=12, **run):
    return TrainConfig(
        ModelConfig("cifar_resnet8"),
        DataConfig(str(data), download=False),
        OptimConfig(batch_size=32, iterations=iterations),
        RunConfig(out=str(out), device="cpu", progress="none", tensorboard=False, eval_every=6, **run),
    )


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (room for one checkpoint of cifar_resnet8, not two); None where
    mounting is not allowed (then the test simulates ENOSPC)."""
    d = tmp_path / "disk"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)], capture_output=True)
    yield d if r.returncode == 0 else None
    if r.returncode == 0:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def test_a_full_disk_keeps_the_previous_checkpoint(tiny_data, tmp_path, small_disk, monkeypatch):
    if small_disk is None:  # simulate: the second checkpoint write finds the disk full
        real, calls = torch.save, []

        def full(obj, f, *a, **k):
            calls.append(1)
            if len(calls) > 1:
                f.write(b"x" * 1000)
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(obj, f, *a, **k)

        monkeypatch.setattr(torch, "save", full)
        out = tmp_path / "sim"
    else:
        out = small_disk / "run"
    with pytest.raises(RunError, match="could not write the checkpoint.*No space left.*iteration 6.* intact"):
        train(_cfg(tiny_data, out))
    assert load_checkpoint(out).iteration == 6  # the first one, whole
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # no half file left


def test_a_read_only_run_directory_is_an_error_naming_it(tiny_data, tmp_path, small_disk):
    if small_disk is None:
        pytest.skip("needs a tmpfs mount to make a read-only directory (tests run as root)")
    out = small_disk / "run"
    train(_cfg(tiny_data, out, iterations=6))
    before = (out / "last.pt").read_bytes()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with pytest.raises(RunError, match=f"cannot write into the run directory {out}"):
        train(resume=out, overrides={"optim.iterations": 12})
    assert (out / "last.pt").read_bytes() == before


def test_overwrite_replaces_a_run_only_when_asked(tiny_data, tmp_path, capsys):
    out = tmp_path / "r"
    args = cli_args(tiny_data, out, iterations=6, eval_every=6, checkpoint_every=6)
    assert cli_main(args) == 0
    assert cli_main(args) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert cli_main(args + ["--overwrite", "--seed", "5"]) == 0
    assert json.loads((out / "config.json").read_text())["run"]["seed"] == 5
    assert not (out / "prev.pt").exists() or load_checkpoint(out / "prev.pt").config["run"]["seed"] == 5


# ---------------------------------------------------------------- non-finite losses
@pytest.fixture
def nan_at_iteration_8(monkeypatch):
    from reslearn.data.device import DeviceData

    real = DeviceData.preprocess_train
    count = {"n": 0}

    def poisoned(self, xb, global_batch):
        count["n"] += 1
        x = real(self, xb, global_batch)
        return x * float("nan") if count["n"] == 8 else x

    monkeypatch.setattr(DeviceData, "preprocess_train", poisoned)


def test_a_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path, nan_at_iteration_8):
    out = tmp_path / "nan"
    with pytest.raises(
        RunError, match=r"non-finite \(NaN or inf\) at iteration 8, lr 0\.01.*last.pt \(iteration 6\)"
    ):
        train(_cfg(tiny_data, out))
    ckpt = load_checkpoint(out)
    assert ckpt.iteration == 6 and all(
        torch.isfinite(v).all() for v in ckpt.model.values() if v.is_floating_point()
    )


def test_nan_policy_skip_batch_skips_and_counts(tiny_data, tmp_path, nan_at_iteration_8):
    cfg = _cfg(tiny_data, tmp_path / "skip", nan_policy="skip-batch")
    r = rows(train(cfg))
    assert [x["skipped_batches"] for x in r] == [0, 1]
    assert all(np.isfinite(x["loss"]) for x in r)


# ---------------------------------------------------------------- damaged checkpoints
def test_truncated_and_bit_flipped_checkpoints_are_refused_with_their_path(tiny_data, tmp_path):
    run = train(_cfg(tiny_data, tmp_path / "r", iterations=12))
    good = (run / "last.pt").read_bytes()
    assert load_checkpoint(run / "prev.pt").iteration == 6  # the one before is kept
    (run / "last.pt").write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match=f"{run / 'last.pt'}.*truncated or corrupted.*prev.pt"):
        load_checkpoint(run)
    flipped = bytearray(good)
    flipped[int(len(good) * 0.6)] ^= 0x10  # inside the tensor data
    (run / "last.pt").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match=f"{run / 'last.pt'}.*(corrupted|not a readable).*prev.pt"):
        load_checkpoint(run)
    assert cli_main(["eval", str(run)]) == 2  # reported, never half-loaded
    # The previous checkpoint resumes the run.
    assert cli_main(["train", "--resume", str(run / "prev.pt"), "--progress", "none"]) == 0
    assert load_checkpoint(run).iteration == 12


# ---------------------------------------------------------------- bad configuration
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
    import re

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
    run = train(_cfg(tiny_data, tmp_path / "r", iterations=6))
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


# ---------------------------------------------------------------- bad data
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
