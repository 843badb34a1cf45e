"""File writing that a crash cannot half-do."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import torch


def cache_dir() -> Path:
    """Where reslearn keeps what it can rebuild (decoded data sets, mean images, the bf16
    probe): RESLEARN_CACHE_DIR, else $XDG_CACHE_HOME/reslearn, else ~/.cache/reslearn."""
    env = os.environ.get("RESLEARN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "reslearn"


def atomic_write(path: Path, write) -> None:
    """``write(f)`` into a temporary file beside ``path``, fsync, rename over ``path``.

    A crash or kill at any moment leaves either the old file or the new one, never half
    of one (rename is atomic on POSIX file systems); on error the temporary is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj, path: Path) -> None:
    """torch.save through :func:`atomic_write`. Serialised in memory first: a full disk
    then fails as a plain OSError (ENOSPC) of the write, not inside torch's zip writer."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(Path(path), lambda f: f.write(buf.getbuffer()))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(Path(path), lambda f: f.write(text.encode()))
