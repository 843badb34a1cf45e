"""How ``reslearn train`` starts a job: several processes through torchrun, continuing the
run in ``--out`` (``--auto-resume``), and leaving the process group when it ends. The
command line only parses and calls these (issue 20)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import torch.distributed as tdist

from ..rundir import LAST
from .engine import train


def without_flag(argv: list[str], flag: str = "--nproc") -> list[str]:
    """``argv`` less ``FLAG N`` / ``FLAG=N``: what each torchrun worker (or study worker) runs."""
    out, skip = [], False
    for x in argv:
        if skip:
            skip = False
        elif x == flag:
            skip = True
        elif not x.startswith(flag + "="):
            out.append(x)
    return out


def launch_torchrun(n: int, argv: list[str]) -> int:
    """``reslearn train --nproc N ARGV``: ``torchrun --standalone --nproc-per-node N -m reslearn
    ARGV`` on this machine, waited for; its exit code."""
    if n < 1:
        raise ValueError(f"--nproc must be a positive integer, got {n}")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}"]
    cmd += ["-m", "reslearn", *without_flag(argv)]
    print("launching: " + " ".join(cmd[2:]), flush=True)
    return subprocess.run(cmd).returncode


def auto_resume(layers: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """``--auto-resume``: the run directory to continue (``run.out`` of the last layer that
    sets it) when it holds a checkpoint, with the layers less ``run.out``; else (None, the
    layers): a new run starts there."""
    out = next((lay["run.out"] for lay in reversed(layers) if lay.get("run.out")), None)
    if not out:
        raise ValueError("--auto-resume needs --out RUN_DIR")
    if (Path(out) / LAST).exists():
        return out, [{k: v for k, v in lay.items() if k != "run.out"} for lay in layers]
    return None, layers


def train_job(
    layers: list[dict[str, Any]],
    names: dict[str, str],
    resume: str | None = None,
    overwrite: bool = False,
    auto: bool = False,
    data_changed: bool = False,
) -> Path:
    """One training job of the command line, in this process (one of torchrun's or alone):
    a new run, ``resume``, or with ``auto`` whichever ``--out`` calls for. The process
    group torchrun's workers join is left when the job ends, however it ends."""
    if auto:
        if resume:
            raise ValueError("give --resume RUN_DIR or --auto-resume (with --out), not both")
        resume, layers = auto_resume(layers)
    if data_changed and not resume:
        raise ValueError("--data-changed applies to --resume (or --auto-resume of a run that exists)")
    if resume and overwrite:
        raise ValueError("--overwrite starts a new run; it does not go with --resume")
    try:
        if resume:
            return train(resume=resume, overrides=layers, flag_names=names, data_changed=data_changed)
        return train(overrides=layers, flag_names=names, overwrite=overwrite)
    finally:
        if tdist.is_available() and tdist.is_initialized():
            tdist.destroy_process_group()
