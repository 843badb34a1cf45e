"""The run folder: the one owner of its file names, of what in it reslearn wrote, and of
the lock that lets one process at a time write it (issue 32).

A run folder holds the files ``train`` writes (:data:`RUN_FILES`, the ``tb/`` folder) and
two of reslearn's own: the marker :data:`RUN_MARKER`, a JSON manifest of the names reslearn
owns there, and :data:`LOCK_FILE`, locked by the process writing the run. Whatever else the
folder holds (a user's notes, their own ``tb/``) is the user's: ``--overwrite`` removes
only what the manifest lists, and a new run refuses a folder where a name it would write
is taken by something reslearn did not write.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import sys
from pathlib import Path

LAST, PREV = "last.pt", "prev.pt"  # the checkpoint and the one it replaced
CHECKPOINT_NAMES = (LAST, PREV)
CONFIG, METRICS, FINAL = "config.json", "metrics.jsonl", "final.json"
RESPONSES = "responses.json"  # reslearn responses / the studies (Figure 7)
CONFUSION = ("confusion.json", "confusion.png")  # reslearn eval --per-class
TB = "tb"  # TensorBoard event files (a folder)
RUN_FILES = (LAST, PREV, METRICS, FINAL, CONFIG, RESPONSES, *CONFUSION)
RUN_MARKER = ".reslearn-run"  # the manifest; its presence says reslearn made the folder
LOCK_FILE = ".reslearn-lock"
OWNED = (*RUN_FILES, TB, LOCK_FILE)  # every name a run of reslearn may create in its folder


def read_metrics(run_dir: str | Path, upto: int | None = None) -> list[dict]:
    """RUN_DIR/metrics.jsonl as rows ([] when absent); ``upto``: the rows of iterations up
    to that one. A damaged line is an error naming the file and the line (issue 32)."""
    p = Path(run_dir) / METRICS
    if not p.exists():
        return []
    rows = []
    for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            ok = isinstance(row, dict) and isinstance(row.get("iteration"), int)
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{str(p)!r} line {n} is not a metrics row (damaged?): {line[:60]!r}")
        if upto is None or row["iteration"] <= upto:
            rows.append(row)
    return rows


def held_out_err(row: dict) -> float | None:
    """The held-out error a report shows for a metrics row or final.json: the test split's,
    or the validation split's where the test was not measured (ImageNet's val/; a run with
    --val-split before its end). The lr schedule reads the validation split first instead
    (train.engine.report): it must never look at the test split."""
    test = row.get("test_err")
    return test if test is not None else row.get("val_err")


class RunExists(ValueError):
    """A new run's folder already holds a run (a usage error: exit 2, one line)."""


class RunBusy(ValueError):
    """Another process holds the run folder's lock (a usage error: exit 2, one line)."""


def is_run_dir(path: Path) -> bool:
    """A folder reslearn made for a run (its marker) or holding a run's checkpoint."""
    return path.is_dir() and any((path / n).is_file() for n in (RUN_MARKER, LAST, PREV))


def run_dir_above(path: str | Path) -> Path | None:
    """The run folder ``path`` lies in (itself included), or None."""
    p = Path(path).expanduser().absolute()
    return next((d for d in (p, *p.parents) if is_run_dir(d)), None)


def owned(run_dir: Path) -> set[str]:
    """The names in ``run_dir`` that reslearn wrote: those its manifest lists. A marker from
    before manifests (an empty file) owns every run name; no marker, nothing."""
    marker = run_dir / RUN_MARKER
    if not marker.is_file():
        return set()
    try:
        text = marker.read_text()
        return set(json.loads(text)["owned"]) & set(OWNED) if text.strip() else set(OWNED)
    except (OSError, ValueError, KeyError, TypeError):
        return set()  # damaged: claim nothing


def claim(run_dir: Path) -> None:
    """Write the manifest: every run name not taken by the user's files is reslearn's."""
    mine = owned(run_dir)
    names = sorted(n for n in OWNED if n in mine or not (run_dir / n).exists())
    (run_dir / RUN_MARKER).write_text(json.dumps({"owned": names}) + "\n")


def foreign(run_dir: Path) -> list[str]:
    """Names a run would write that exist in ``run_dir`` but reslearn did not write."""
    mine = owned(run_dir)
    return [n for n in (*RUN_FILES, TB) if (run_dir / n).exists() and n not in mine]


def check_new_run(run_dir: Path, overwrite: bool) -> None:
    """A new run may go into a missing or empty folder, or one reslearn made for a run
    that has no checkpoint yet (a restart before the first save). A folder holding a run is
    refused unless ``overwrite``; one where a run's name is taken by a file reslearn did not
    write is refused always (``--overwrite`` replaces only reslearn's own files)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"--out {str(run_dir)!r} is a file, not a run folder")
    theirs = foreign(run_dir) if run_dir.is_dir() else []
    if theirs:
        raise ValueError(
            f"{str(run_dir)!r} holds {', '.join(theirs)}, which reslearn did not write there; "
            f"choose another --out (--overwrite replaces only a run's own files)"
        )
    if not overwrite and any((run_dir / n).exists() for n in (LAST, PREV, FINAL)):
        raise RunExists(
            f"{str(run_dir)!r} already holds a run; continue it with --resume {run_dir}, "
            f"replace it with --overwrite, or choose another --out (nothing is overwritten)"
        )


def remove_run(run_dir: Path) -> None:
    """--overwrite: the files of the run in ``run_dir`` that its manifest lists, named on
    stderr; nothing else there (the user's files, the lock this process holds) is touched."""
    mine = owned(run_dir)
    gone = [n for n in (*RUN_FILES, TB) if n in mine and (run_dir / n).exists()]
    if gone:
        print(f"reslearn: --overwrite: replacing {', '.join(gone)} in {run_dir}", file=sys.stderr)
    for name in gone:
        if name == TB:
            shutil.rmtree(run_dir / TB, ignore_errors=True)
        else:
            (run_dir / name).unlink(missing_ok=True)


class RunLock:
    """An exclusive OS lock (flock) on RUN_DIR/.reslearn-lock for as long as a process
    writes the run: the kernel releases it when the process ends however it ends (SIGKILL
    too), so a dead holder never blocks. The file records the holder's pid and host for the
    message a second writer gets. Readers (eval, predict, export) take no lock."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        path = self.run_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunBusy(
                f"{str(self.run_dir)!r} is being written by {holder}: one process at a time trains "
                f"a run; wait for it to end (reading the run with eval, predict or export works now)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self.fd = fd
        return self

    @staticmethod
    def busy(run_dir: Path) -> bool:
        """Whether a process holds the run's lock now (a hint for a study's workers, which
        then take up another run; the lock itself decides)."""
        try:
            fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing releases a lock taken here
        return False

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing releases the flock
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
