"""Every environment variable reslearn reads, parsed in one place (issue 32).

A variable is input like a flag: a bad value is one line naming the variable and the
value, given before any work, never a traceback (or a silent fallback) from deep inside.
``check()`` runs at the start of every command; the readers below are what the code uses.
torchrun's own variables (RANK, WORLD_SIZE, LOCAL_RANK, ...) are torch's to set and check.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path


def _positive_int(name: str, raw: str) -> int:
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ValueError(f"the environment variable {name} must be a positive integer, got {raw!r}")
    return int(raw)


def _positive_seconds(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"the environment variable {name} must be a positive number of seconds, got {raw!r}")
    return value


def _thread_counts(name: str, raw: str) -> str:
    """OpenMP's form: a positive count, or counts per nesting level ("4,2")."""
    if not all(part.strip().isdigit() and int(part) >= 1 for part in raw.split(",")):
        raise ValueError(f"the environment variable {name} must be a positive integer, got {raw!r}")
    return raw


def _folder(name: str, raw: str) -> Path:
    p = Path(raw).expanduser()
    if not raw.strip() or "\0" in raw:
        raise ValueError(f"the environment variable {name} must name a folder, got {raw!r}")
    if p.exists() and not p.is_dir():
        raise ValueError(f"the environment variable {name}={raw!r} is a file, not a folder")
    return p


VARIABLES: dict[str, tuple[Callable[[str, str], object], str]] = {
    "OMP_NUM_THREADS": (_thread_counts, "intra-op threads (reslearn.threads)"),
    "MKL_NUM_THREADS": (_positive_int, "intra-op threads (reslearn.threads)"),
    "RESLEARN_MAX_PIXELS": (_positive_int, "the largest image decoded, width x height (reslearn.files)"),
    "RESLEARN_DIST_TIMEOUT": (_positive_seconds, "seconds a process waits for the others (DDP)"),
    "RESLEARN_CACHE_DIR": (_folder, "where decoded data sets are cached"),
    "RESLEARN_JOBS_DIR": (_folder, "where running jobs register their thread counts"),
}


def get(name: str, default=None):
    """The parsed value of ``name`` (one of :data:`VARIABLES`), or ``default`` when unset
    or empty; a bad value raises ValueError naming the variable."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return VARIABLES[name][0](name, raw)


def check() -> None:
    """Parse every variable that is set: the first bad one is an error."""
    for name in VARIABLES:
        get(name)
