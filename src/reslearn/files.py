"""File writing that a crash cannot half-do."""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import tempfile
from pathlib import Path

import torch

from . import environ
from .rundir import CHECKPOINT_NAMES, run_dir_above


def cache_dir() -> Path:
    """Where reslearn keeps what it can rebuild (decoded data sets, mean images, the bf16
    probe): RESLEARN_CACHE_DIR, else $XDG_CACHE_HOME/reslearn, else ~/.cache/reslearn."""
    env = environ.get("RESLEARN_CACHE_DIR")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "reslearn"


def atomic_write(path: Path, write) -> None:
    """``write(f)`` into a temporary file beside ``path``, fsync, rename over ``path``.

    A crash or kill at any moment leaves either the old file or the new one, never half
    of one (rename is atomic on POSIX file systems); on error the temporary is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:  # named by the file asked for, not by the temporary's random name
        raise OSError(e.errno, e.strerror, str(path)) from e
    try:
        with os.fdopen(fd, "wb") as f:
            # mkstemp makes the file private (0600); the result gets the mode an open() would
            # have given it: the replaced file's, else 0666 less the umask. Best effort: not
            # on Windows before Python 3.13, nor on file systems without modes.
            with contextlib.suppress(AttributeError, OSError):
                os.fchmod(f.fileno(), _mode_for(path))
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# The process's umask, read once at import: os.umask is the only portable way to read it and
# it sets it too, which a thread creating a file at that moment would see.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~_UMASK


def atomic_torch_save(obj, path: Path) -> None:
    """torch.save through :func:`atomic_write`. Serialised in memory first: a full disk
    then fails as a plain OSError (ENOSPC) of the write, not inside torch's zip writer."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(Path(path), lambda f: f.write(buf.getbuffer()))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(Path(path), lambda f: f.write(text.encode()))


# ---------------------------------------------------------------- what reslearn may write over


def is_reslearn_checkpoint(path: Path) -> bool:
    """A checkpoint by name (last.pt, prev.pt) or by content: a torch zip whose pickle
    names the reslearn checkpoint format. Read as bytes; nothing is unpickled."""
    import zipfile

    if path.name in CHECKPOINT_NAMES:
        return True
    try:
        with zipfile.ZipFile(path) as z:
            pkl = next((n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            return pkl is not None and b"reslearn-checkpoint" in z.read(pkl)[:4096]
    except (OSError, zipfile.BadZipFile, RuntimeError):
        return False


def _json_with(key: str):
    def check(path: Path) -> bool:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return False
        rows = data if isinstance(data, list) else [data]
        return bool(rows) and all(isinstance(r, dict) and key in r for r in rows)

    return check


def safetensors_of_reslearn(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n)) if 0 < n < 1 << 26 else {}
    except (OSError, ValueError):
        return False
    return isinstance(header, dict) and "reslearn" in (header.get("__metadata__") or {})


def onnx_of_reslearn(path: Path) -> bool:
    try:
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # not ONNX at all (onnx raises its own and protobuf's errors)
        return False
    return [i.name for i in graph.input][:1] == ["image"] and [o.name for o in graph.output] == ["logits"]


def torchscript_archive(path: Path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names)


OUTPUT_KINDS = {
    "responses": ("a reslearn responses file", _json_with("std")),
    "bench": ("a reslearn bench file", _json_with("train_img_s")),
    "checkpoint": ("a reslearn checkpoint", lambda p: False),  # never replaced (below)
}
"""What ``--overwrite`` may replace, per kind of output: a file of the same kind that
reslearn writes (issue 32); anything else at that path is the user's and stays. The export
formats add theirs (reslearn.use.register_export_format)."""


def register_output_kind(kind: str, what: str, same_kind) -> None:
    OUTPUT_KINDS[kind] = (what, same_kind)


def output_file(
    path, *, kind: str, overwrite: bool = False, reading=(), inside=(), flag: str = "--out", log=None
) -> Path:
    """The one rule for a file reslearn writes where the user says (issues 19, 32): the
    folder must exist (reslearn creates none outside what the user named); never inside a
    run folder (a run's files are written by train alone), inside the installed package or
    inside a folder of ``inside`` (the data being read), never over the input being read,
    nor over a checkpoint; over an existing file only with ``--overwrite`` and only when it
    is of ``kind`` (:data:`OUTPUT_KINDS`), saying so. Every refusal names the path and the flag."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise ValueError(f"{flag} {str(path)!r} is a folder; give a file name")
    if not p.parent.is_dir():
        raise ValueError(
            f"{flag} {str(path)!r}: the folder {str(p.parent)!r} does not exist (reslearn creates no "
            f"folders outside what you name; create it first)"
        )
    if p.name in CHECKPOINT_NAMES:
        raise ValueError(
            f"{flag} {str(path)!r}: {', '.join(CHECKPOINT_NAMES)} are the names of a run's checkpoints; "
            f"reslearn writes nothing else under them (choose another name)"
        )
    run = run_dir_above(p.parent)
    if run is not None:
        raise ValueError(
            f"{flag} {str(path)!r} is inside the run folder {str(run)!r}, whose files only "
            f"reslearn train writes; choose a path outside it"
        )
    where = p.parent.resolve()
    package = Path(__file__).resolve().parent
    folders = [(package, "the installed reslearn package")] + [(Path(d), "the data folder") for d in inside]
    for d, what in folders:
        d = d.expanduser().resolve()
        if where == d or d in where.parents:
            raise ValueError(f"{flag} {str(path)!r} is inside {what} {str(d)!r}; choose a path outside it")
    if p.exists():
        for r in reading:
            if Path(r).exists() and os.path.samefile(p, r):
                raise ValueError(f"{flag} {str(path)!r} is the file being read; choose another name")
        if is_reslearn_checkpoint(p):
            raise ValueError(
                f"{flag} {str(path)!r} is a reslearn checkpoint; reslearn never writes over one, "
                f"not even with --overwrite (choose another name)"
            )
        if not overwrite:
            raise ValueError(f"{flag} {str(path)!r} exists; add --overwrite to replace it")
        what, same = OUTPUT_KINDS[kind]
        if not same(p):
            raise ValueError(
                f"{flag} {str(path)!r} exists and is not {what}; --overwrite replaces only a file "
                f"reslearn wrote of the kind it writes there (choose another name)"
            )
        if log is not None:
            log(f"replacing {p} (--overwrite)")
    if not os.access(p.parent, os.W_OK):
        raise ValueError(f"{flag} {str(path)!r}: the folder {str(p.parent)!r} is not writable")
    return p


# ---------------------------------------------------------------- images from users
DEFAULT_MAX_PIXELS = 40_000_000
"""Images larger than this (width x height) are refused before decoding: 40 M pixels is
120 MB as RGB uint8 (about 8000 x 5000); a 12000 x 12000 1-bit PNG of 17 KB would decode
to 432 MB and cost 2 GB on the way. RESLEARN_MAX_PIXELS sets another limit."""


def max_pixels() -> int:
    return environ.get("RESLEARN_MAX_PIXELS", DEFAULT_MAX_PIXELS)


def open_image(path):
    """PIL.Image.open with the pixel limit checked from the header, before any decoding
    (PIL's own bomb check warns at 89 M pixels and refuses only at 179 M)."""
    from PIL import Image

    im = Image.open(path)
    w, h = im.size
    limit = max_pixels()
    if w * h > limit:
        im.close()
        raise ValueError(
            f"{str(path)!r} is {w}x{h} = {w * h:,} pixels, over the limit of {limit:,} "
            f"(set RESLEARN_MAX_PIXELS to allow it)"
        )
    return im
