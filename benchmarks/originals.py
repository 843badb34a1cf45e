"""Where the benchmarks and study scripts find the original CIFAR-10 (issue 31).

The official python batches (``cifar-10-batches-py/``), unpacked once by the shared data's
own ``unpack.py`` (official MD5s checked, ~5 s) from ``$RESLEARN_DATA_ROOT/cifar10`` into
``./data/cifar10``, the folder ``reslearn train`` reads by default, or wherever
``RESLEARN_CIFAR10`` says (``.ci/run`` sets it). The JPEG copy (``$RESLEARN_DATA_ROOT/cifar10-jpeg``)
stays for re-checking results measured on it: :func:`cifar10_jpeg_dir`.

As a script it prints the folder (unpacking first when needed), for the shell scripts:
``data=$($PY benchmarks/originals.py)``; with ``--jpeg``, the JPEG copy's. Scripts in
``benchmarks/speed/`` and ``benchmarks/studies/`` put ``benchmarks/`` on ``sys.path`` to import it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    return Path(os.environ.get("RESLEARN_DATA_ROOT", ROOT.parent / "shared" / "data"))


def cifar10_dir() -> Path:
    """The folder holding ``cifar-10-batches-py/`` (the original pixels), unpacked if absent."""
    dest = Path(os.environ.get("RESLEARN_CIFAR10") or ROOT / "data" / "cifar10")
    if not (dest / "cifar-10-batches-py" / "batches.meta").is_file():
        unpack = data_root() / "cifar10" / "unpack.py"
        if not unpack.is_file():
            raise SystemExit(f"no original CIFAR-10 in {str(dest)!r} and no {str(unpack)!r} to unpack it")
        subprocess.run([sys.executable, str(unpack), str(dest)], check=True, stdout=sys.stderr)
    return dest


def cifar10_jpeg_dir() -> Path:
    """The shared JPEG q75 copy (image folders): only for re-checking results measured on it."""
    return data_root() / "cifar10-jpeg"


if __name__ == "__main__":
    print(cifar10_jpeg_dir() if sys.argv[1:] == ["--jpeg"] else cifar10_dir())
