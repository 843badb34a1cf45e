"""Checkpoints: everything needed to resume a run exactly or to deploy its model."""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch
from torch import nn

from ..data.cifar import atomic_torch_save

CHECKPOINT_FORMAT = "reslearn-checkpoint/1"


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model under torch.compile / DDP wrappers (no ``_orig_mod.`` prefixes)."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True,
                          text=True, timeout=5)  # fmt: skip


def git_commit() -> str | None:
    """Short commit of the reslearn checkout, "-dirty" when tracked files differ; None
    outside a git checkout (an installed wheel)."""
    try:
        head = _git("rev-parse", "--short", "HEAD")
        if head.returncode != 0 or not head.stdout.strip():
            return None
        dirty = _git("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def save_checkpoint(path: Path, state: dict) -> None:
    atomic_torch_save({"format": CHECKPOINT_FORMAT, **state}, Path(path))


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run directory holding last.pt."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "last.pt"
    if not p.is_file():
        raise ValueError(f"no checkpoint at {str(path)!r} (expected a .pt file or a run dir with last.pt)")
    return p


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    p = resolve_checkpoint(path)
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=False)
    except Exception as e:
        raise ValueError(f"{str(p)!r} is not a readable checkpoint: {e}") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{str(p)!r} is not a reslearn checkpoint")
    return ckpt
