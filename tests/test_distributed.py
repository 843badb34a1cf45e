"""Distributed training with torchrun: real 2-process gloo jobs on CPU."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from reslearn.checkpoint import load_checkpoint
from reslearn.cli import main as cli_main
from reslearn.train import read_metrics

from .helpers import write_pickle_cifar

PROBE = str(Path(__file__).parent / "dist_probe.py")
TIMING = ("images_per_s", "wall_s")


def torchrun(*args, nproc=2, max_restarts=0, timeout=300, env=None):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        f"--max-restarts={max_restarts}",
        *args,
    ]
    e = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e)


@pytest.fixture
def data128(tmp_path):
    return write_pickle_cifar(tmp_path / "c10", per_batch=52, test=60)  # 260 train images


def _train_argv(data, eval_every: int) -> list[str]:
    """`reslearn train` of 8 iterations of a tiny net in fp32 on CPU, batch 64 (32 a rank)."""
    return [
        "train", "--model", "cifar_resnet8", "--data-dir", str(data), "--no-download",
        "--batch-size", "64", "--iterations", "8", "--eval-every", str(eval_every),
        "--device", "cpu", "--progress", "log", "--no-tensorboard", "--amp", "off",
    ]  # fmt: skip


def _rows(run):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(run)]


def test_two_ranks_see_disjoint_data_that_covers_the_epoch(tiny_data, tmp_path):
    r = torchrun(PROBE, "data", str(tmp_path), str(tiny_data))
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = (json.loads((tmp_path / f"data{i}.json").read_text()) for i in (0, 1))
    assert len(a) == len(b) == 6  # 200 images, global batch 32: 6 steps
    for xa, xb in zip(a, b):
        assert len(xa) == len(xb) == 16 and not set(xa) & set(xb)
    every = [i for batch in a + b for i in batch]
    assert len(every) == len(set(every)) == 192  # 6 x 32: all but the dropped partial batch
    assert set(every) <= set(range(200))


def test_parameters_are_identical_on_both_ranks(tiny_data, tmp_path):
    r = torchrun(PROBE, "train", str(tmp_path), str(tiny_data))
    assert r.returncode == 0, r.stderr[-2000:]
    p0, p1 = (torch.load(tmp_path / f"params{i}.pt", weights_only=True) for i in (0, 1))
    start = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(p0[k], p1[k]) for k in p0 if "running" not in k and "num_batches" not in k)
    assert all(torch.equal(p0[k], start[k]) for k in p0)  # the checkpoint holds rank 0's model


def test_sync_bn_two_processes_of_64_match_one_process_of_128(data128, tmp_path):
    """fp32, 3 steps: the same data, augmentation and global BN statistics give the same
    update up to rounding. lr 0.01: at 0.1 the last-bit differences of the sums (3e-7
    after one step) grow about 17x a step on this tiny net and data."""
    common = [
        "--model",
        "cifar_resnet8",
        "--data-dir",
        str(data128),
        "--no-download",
        "--batch-size",
        "128",
        "--iterations",
        "3",
        "--eval-every",
        "3",
        "--device",
        "cpu",
        "--progress",
        "none",
        "--no-tensorboard",
        "--amp",
        "off",
        "--channels-last",
        "off",
        "--lr",
        "0.01",
    ]
    assert cli_main(["train", *common, "--out", str(tmp_path / "one")]) == 0
    r = torchrun("-m", "reslearn", "train", *common, "--sync-bn", "--out", str(tmp_path / "sync"))
    assert r.returncode == 0, r.stderr[-2000:]
    r = torchrun("-m", "reslearn", "train", *common, "--out", str(tmp_path / "per-device"))
    assert r.returncode == 0, r.stderr[-2000:]
    # The paper's two GPUs of 64 on one process: --bn-splits 2 is the per-device run.
    assert cli_main(["train", *common, "--bn-splits", "2", "--out", str(tmp_path / "split")]) == 0
    one, sync, per, split = (
        load_checkpoint(tmp_path / d).model for d in ("one", "sync", "per-device", "split")
    )
    keys = [k for k in one if "num_batches" not in k]
    assert max((one[k] - sync[k]).abs().max().item() for k in keys) < 1e-5
    assert max((one[k] - per[k]).abs().max().item() for k in keys) > 1e-3  # BN per device differs
    assert max((split[k] - per[k]).abs().max().item() for k in keys) < 1e-5  # running stats too
    assert _rows(tmp_path / "split")[0]["train_err"] == _rows(tmp_path / "per-device")[0]["train_err"]
    assert _rows(tmp_path / "one")[0]["train_err"] == _rows(tmp_path / "sync")[0]["train_err"]


def test_a_two_process_checkpoint_resumes_in_one_process(data128, tmp_path, capsys):
    common = [
        "--model",
        "cifar_resnet8",
        "--data-dir",
        str(data128),
        "--no-download",
        "--batch-size",
        "64",
        "--eval-every",
        "2",
        "--device",
        "cpu",
        "--progress",
        "none",
        "--no-tensorboard",
    ]
    out = tmp_path / "run"
    rc = cli_main(["train", "--nproc", "2", *common, "--iterations", "4", "--out", str(out)])
    assert rc == 0
    assert load_checkpoint(out).iteration == 4
    assert cli_main(["train", "--resume", str(out), "--iterations", "6"]) == 0
    assert [r["iteration"] for r in read_metrics(out)] == [2, 4, 6]
    assert json.loads((out / "final.json").read_text())["iteration"] == 6
    # A global batch that does not split over the processes is refused.
    r = torchrun(
        "-m",
        "reslearn",
        "train",
        *common,
        "--batch-size",
        "63",
        "--iterations",
        "2",
        "--out",
        str(tmp_path / "odd"),
    )
    assert r.returncode != 0 and "does not split over 2 processes" in r.stdout + r.stderr


def test_a_killed_rank_ends_the_job_quickly(tmp_path):
    t0 = time.time()
    r = torchrun(PROBE, "die", str(tmp_path), env={"RESLEARN_DIST_TIMEOUT": "30"}, timeout=180)
    elapsed = time.time() - t0
    assert r.returncode != 0
    assert elapsed < 120, f"the job took {elapsed:.0f} s to end after a rank died"


def test_max_restarts_resumes_from_the_last_checkpoint(data128, tmp_path):
    common = _train_argv(data128, eval_every=2)
    ref = torchrun("-m", "reslearn", *common, "--out", str(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr[-2000:]
    r = torchrun(
        PROBE,
        "flaky",
        str(tmp_path),
        *common,
        "--auto-resume",
        "--out",
        str(tmp_path / "run"),
        max_restarts=1,
        env={"RESLEARN_DIST_TIMEOUT": "60"},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "killed-once").exists()  # rank 1 did die once
    assert "resumed at iteration" in r.stdout + r.stderr  # at 2 or 4: rank 0 may not have saved 4 yet
    assert _rows(tmp_path / "run") == _rows(tmp_path / "ref")


def test_a_signal_to_one_rank_stops_every_rank_at_the_same_step(data128, tmp_path):
    """Rank 1 alone gets SIGTERM during step 2: the ranks vote, both stop after step 3 with
    one checkpoint (not rank 1 alone, leaving rank 0 in a mismatched collective), and the
    resumed job equals the uninterrupted one."""
    common = _train_argv(data128, eval_every=4)
    env = {"RESLEARN_DIST_TIMEOUT": "30"}
    t0 = time.time()
    ref = torchrun("-m", "reslearn", *common, "--out", str(tmp_path / "ref"), env=env)
    whole_run_s = time.time() - t0
    assert ref.returncode == 0, ref.stderr[-2000:]
    run = tmp_path / "run"
    t0 = time.time()
    r = torchrun(PROBE, "signal", str(tmp_path), *common, "--out", str(run), env=env)
    # No wait for the 30 s collective timeout: the stopped job takes no longer than the
    # whole run plus a margin (timed on this machine, so as fast or slow as it is).
    assert r.returncode != 0 and time.time() - t0 < whole_run_s + 20, r.stderr[-3000:]
    assert r.stderr.count("stopped by SIGTERM at iteration 3;") == 2, r.stderr[-3000:]  # both ranks
    assert load_checkpoint(run).iteration == 3
    res = torchrun("-m", "reslearn", "train", "--resume", str(run), "--progress", "none", env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert _rows(run) == _rows(tmp_path / "ref")
