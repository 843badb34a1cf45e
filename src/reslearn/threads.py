"""Intra-op threads per process, and several jobs sharing one machine (issue 13).

Two torch processes that each run one intra-op thread per core on the same cores do not
share them fairly: OpenMP threads wait for each other at every parallel region, and a
region cannot end while one of its threads is descheduled, so each job kept only 19% of
its solo rate on our 2-core machine (docs/performance.md). The remedy is to give each
job its share of the cores, which this module does by default for every reslearn job that
computes (train and reproduce; eval, predict and bench through the command line):

- ``--threads N`` (``run.threads``) fixes N intra-op threads.
- Otherwise, when the user set ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` (torchrun sets
  ``OMP_NUM_THREADS=1`` for each of several processes), torch already follows it and the
  count is left alone.
- Otherwise (auto) each running reslearn job registers itself in a per-user
  directory (``$RESLEARN_JOBS_DIR``, default ``<tmp>/reslearn-<uid>/jobs``): a file named
  ``reslearn-job-<pid>``, holding the threads it uses ("auto" for an auto job). Only files
  of that name are read or cleaned up: the directory may be one the user named, holding
  files of their own (issue 32). An auto job takes
  ``(cores - threads of the fixed jobs) // (auto jobs)`` threads, at least one, and looks
  again every few seconds, so a job started later, or one that ends, changes the share.
  Cores are those this process may run on (``os.sched_getaffinity``).

DataLoader workers run one thread each (torch's worker loop sets it), and processes
that reslearn starts (``--nproc`` through torchrun) get ``OMP_NUM_THREADS`` from torchrun.
Results can depend on the thread count in the last bits (oneDNN splits reductions by
thread), so a bit-exact rerun needs the same ``--threads``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from . import environ

ENV_THREADS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
RECHECK_S = 5.0  # seconds between looks at the other jobs


def user_set_threads() -> bool:
    return any(os.environ.get(k) for k in ENV_THREADS)


# torch's own default, read before anything here changes it: the physical cores (one
# thread per core; hyper-threads add nothing to convolutions). Not where OMP_NUM_THREADS
# or MKL_NUM_THREADS chose it (say 1, as the study scripts and torchrun set): then it says
# nothing of the cores, and `--threads 2` is not "capped at 1 core".
_TORCH_DEFAULT = None if user_set_threads() else torch.get_num_threads()


def cpu_count() -> int:
    """Cores a job may use: torch's default (where the environment did not choose it),
    within this process's affinity mask (which containers and taskset set)."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        allowed = os.cpu_count() or 1
    return max(1, allowed if _TORCH_DEFAULT is None else min(allowed, _TORCH_DEFAULT))


def jobs_dir() -> Path:
    default = Path(tempfile.gettempdir()) / f"reslearn-{os.getuid() if hasattr(os, 'getuid') else 0}" / "jobs"
    return environ.get("RESLEARN_JOBS_DIR", default)


JOB_PREFIX = "reslearn-job-"  # a name only reslearn makes


def job_pid(name: str) -> int | None:
    """The pid of a job file's name, or None for a name reslearn did not make."""
    rest = name.removeprefix(JOB_PREFIX)
    return int(rest) if rest != name and rest.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def other_jobs(directory: Path, me: int) -> list[str]:
    """What the other live jobs registered: "auto" or their fixed thread count. Files of
    dead processes (a job killed with SIGKILL) are removed on the way."""
    found = []
    for f in directory.glob(JOB_PREFIX + "*"):
        pid = job_pid(f.name)
        if pid is None or pid == me:
            continue
        if not _alive(pid):
            f.unlink(missing_ok=True)
            continue
        with contextlib.suppress(OSError):
            found.append(f.read_text().strip() or "auto")
    return found


def fair_share(cores: int, others: list[str]) -> int:
    """Threads for one more auto job beside ``others``."""
    fixed = sum(int(x) for x in others if x.isdigit())
    autos = 1 + sum(1 for x in others if not x.isdigit())
    return max(1, (cores - fixed) // autos)


class ThreadPolicy:
    """Sets this process's intra-op threads for a job and keeps its share fair.

    Use as a context manager around the training loop; call :meth:`update` often (it
    looks at the other jobs at most every ``RECHECK_S`` seconds)."""

    def __init__(self, requested: int = 0, directory: Path | None = None) -> None:
        if requested < 0:
            raise ValueError(f"threads must be >= 0 (0 = auto), got {requested}")
        self.directory = directory or jobs_dir()
        self.fixed: int | None = None
        if requested > cpu_count():
            # More threads than cores only adds waiting (100,000 crashed torch: issue 19).
            print(
                f"reslearn: --threads {requested} capped at this machine's {cpu_count()} cores",
                file=sys.stderr,
            )
            requested = cpu_count()
        if requested:
            self.fixed, self.source = requested, "--threads"
        elif user_set_threads():
            self.fixed, self.source = torch.get_num_threads(), "OMP_NUM_THREADS"
        else:
            self.source = "auto: a fair share of the cores"
        self.file: Path | None = None
        self.active = False  # only an entered policy changes threads
        self.next_check = 0.0

    def describe(self) -> str:
        n = torch.get_num_threads()
        return f"{n} intra-op thread{'s' if n != 1 else ''} ({self.source})"

    def __enter__(self) -> ThreadPolicy:
        self.before = torch.get_num_threads()  # restored on exit: the caller's setting
        self.active = True
        if self.fixed is not None and torch.get_num_threads() != self.fixed:
            torch.set_num_threads(self.fixed)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.file = self.directory / f"{JOB_PREFIX}{os.getpid()}"
            self.file.write_text("auto" if self.fixed is None else str(self.fixed))
        except OSError:
            self.file = None  # no shared directory: the job still runs, without sharing
        self.update(force=True)
        return self

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            self.file.unlink(missing_ok=True)
        self.active = False
        if torch.get_num_threads() != self.before:
            torch.set_num_threads(self.before)

    def update(self, force: bool = False) -> int:
        """The thread count now in use, after adapting an auto job to the other jobs."""
        now = time.monotonic()
        if self.active and self.fixed is None and (force or now >= self.next_check):
            self.next_check = now + RECHECK_S
            share = fair_share(cpu_count(), other_jobs(self.directory, os.getpid()))
            if share != torch.get_num_threads():
                torch.set_num_threads(share)
        return torch.get_num_threads()
