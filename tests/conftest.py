import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def data_root() -> Path:
    """The shared real data (RESLEARN_DATA_ROOT). Missing: fail in CI, skip elsewhere."""
    root = os.environ.get("RESLEARN_DATA_ROOT")
    if root and Path(root).is_dir():
        return Path(root)
    msg = f"real data not found (RESLEARN_DATA_ROOT={root!r})"
    if os.environ.get("CI"):
        pytest.fail(msg + " -- CI must provide ../shared/data")
    pytest.skip(msg)


@pytest.fixture
def shared_data() -> Path:
    return data_root()


def cifar10_originals() -> Path:
    """The original CIFAR-10 (the official python batches): RESLEARN_CIFAR10 when set
    (.ci/run unpacks them there), else unpacked once from RESLEARN_DATA_ROOT/cifar10 by its
    own unpack.py (official MD5s checked, ~5 s) into a cache folder outside the checkout;
    never into the shared folder, which is read-only in CI."""
    from reslearn.data.cifar import PICKLE_DIR

    dest = os.environ.get("RESLEARN_CIFAR10")
    if dest:
        if not (Path(dest) / PICKLE_DIR / "batches.meta").is_file():
            pytest.fail(f"RESLEARN_CIFAR10={dest!r} holds no {PICKLE_DIR}/ (unpack.py writes it)")
        return Path(dest)
    root = data_root()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reslearn" / "data" / "cifar10"
    if not (cache / PICKLE_DIR / "batches.meta").is_file():
        import subprocess
        import sys

        subprocess.run([sys.executable, str(root / "cifar10" / "unpack.py"), str(cache)], check=True)
    return cache


@pytest.fixture(scope="session")
def cifar10() -> Path:
    """The folder holding the original CIFAR-10's cifar-10-batches-py/ (cifar10_originals)."""
    return cifar10_originals()


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """Every test decodes into its own cache: no test sees another's (or the user's)."""
    monkeypatch.setenv("RESLEARN_CACHE_DIR", str(tmp_path / "cache"))
    # ... and its own register of running jobs: a user's job beside the tests does not
    # change their thread count (nor, in the last bits, their numbers).
    monkeypatch.setenv("RESLEARN_JOBS_DIR", str(tmp_path / "jobs"))


@pytest.fixture
def tiny_data(tmp_path):
    """A tiny CIFAR-10 in the canonical pickle format: 200 train, 60 test images."""
    from .helpers import write_pickle_cifar

    return write_pickle_cifar(tmp_path / "c10", per_batch=40, test=60)
