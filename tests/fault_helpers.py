"""Shared by the fault tests: a training subprocess, its metrics, a tiny config."""

import os
import subprocess
import sys
import time
from pathlib import Path

from .helpers import TIMING, rows  # noqa: F401 (the fault tests import them from here)

ROOT = Path(__file__).resolve().parent.parent


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
