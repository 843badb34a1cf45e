"""CIFAR-10 and CIFAR-100 from the canonical python-pickle archives or from an image-folder tree.

Both decode once into uint8 tensors (N, 3, 32, 32) that are cached on disk, keyed by
the source files (path, size, mtime), so a second run starts in seconds. The cache keeps
the CACHE_KEEP most recently used data sets and deletes older ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_torch_save, cache_dir
from .imagefiles import IMAGE_EXTS, DataError, class_folders, decode_rgb, labelled_files
from .safe_pickle import DataPickleRefused, load_pickle

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"  # published with the archive
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
PICKLE_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"


@dataclass(frozen=True)
class CifarArchive:
    """One of the two canonical python-pickle archives (https://www.cs.toronto.edu/~kriz/cifar.html):
    where it is, its checksum, its files and the keys of its labels and class names.
    ``labels`` ("fine" or "coarse") exists in CIFAR-100 only (100 classes or 20 superclasses)."""

    name: str
    url: str
    md5: str
    pickle_dir: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    coarse: bool  # has fine and coarse labels

    def label_key(self, labels: str) -> str:
        return f"{labels}_labels" if self.coarse else "labels"

    def names_key(self, labels: str) -> str:
        return f"{labels}_label_names" if self.coarse else "label_names"

    @property
    def layout(self) -> str:
        files = ",".join((*self.train_files, self.test_file)) if self.coarse else "data_batch_1..5,test_batch"
        return (
            f"either DIR/{self.pickle_dir}/{{{files}}} (the canonical python version), DIR/{{{files}}}, or "
            f"an image-folder tree DIR/train/<class>/*.png|jpg and DIR/test/<class>/*.png|jpg"
        )


CIFAR10_ARCHIVE = CifarArchive(
    "CIFAR-10", CIFAR10_URL, CIFAR10_MD5, PICKLE_DIR, TRAIN_BATCHES, TEST_BATCH, "batches.meta", False
)
CIFAR100_ARCHIVE = CifarArchive(
    "CIFAR-100",
    "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    "eb9058c3a382ffc7106e4002c42a8d85",  # published with the archive
    "cifar-100-python",
    ("train",),
    "test",
    "meta",
    True,
)


@dataclass
class CifarArrays:
    """Decoded CIFAR-style data: uint8 images (N, 3, 32, 32) and int64 labels (N,)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    source: str  # human-readable: format and path
    format: str  # "pickle" or "imagefolder"

    def __post_init__(self) -> None:
        for name in ("train", "test"):
            x, y = getattr(self, f"{name}_x"), getattr(self, f"{name}_y")
            if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
                raise DataError(f"{name} images must be uint8 (N, 3, H, W), got {x.dtype} {tuple(x.shape)}")
            if len(x) != len(y) or len(x) == 0:
                raise DataError(f"{name} split: {len(x)} images but {len(y)} labels")


# ---------------------------------------------------------------- locating the data
def find_source(data_dir: str | os.PathLike, archive: CifarArchive = CIFAR10_ARCHIVE) -> tuple[str, Path]:
    """Return ("pickle", dir_with_batches) or ("imagefolder", root); raise if neither."""
    d = Path(data_dir).expanduser()
    for cand in (d / archive.pickle_dir, d):
        if all((cand / b).is_file() for b in (*archive.train_files, archive.test_file)):
            return "pickle", cand
    if (d / "train").is_dir() and (d / "test").is_dir():
        return "imagefolder", d
    raise FileNotFoundError(f"no {archive.name} data in {str(d)!r}: expected {archive.layout}")


# ---------------------------------------------------------------- download
def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def download_cifar(
    data_dir: str | os.PathLike,
    archive: CifarArchive = CIFAR10_ARCHIVE,
    url: str | None = None,
    md5: str | None = None,
    timeout: float = 30,
) -> Path:
    """Download the canonical archive into ``data_dir``, verify its MD5, unpack it.

    The archive is written to a temporary file and only unpacked after its checksum
    matches; unpacking goes to a temporary folder that is renamed into place, so a
    truncated or corrupt download is never half-used.
    """
    d, url, md5 = Path(data_dir).expanduser(), url or archive.url, md5 or archive.md5
    if (d / archive.pickle_dir).exists():  # the user's, incomplete: never replaced (issue 32)
        have = (
            sorted(p.name for p in (d / archive.pickle_dir).iterdir())
            if (d / archive.pickle_dir).is_dir()
            else []
        )
        raise DataError(
            f"{str(d / archive.pickle_dir)!r} exists but is not a complete {archive.name} (it holds "
            f"{', '.join(have[:6]) or 'nothing'}); reslearn does not replace it: complete it, or remove it "
            f"to download {archive.name} there"
        )
    made = [p for p in (d, *d.parents) if not p.exists()]  # deepest first
    d.mkdir(parents=True, exist_ok=True)
    try:
        return _download_into(d, archive, url, md5, timeout)
    except BaseException:
        # A failed download (offline, say) leaves no folders behind, not even empty ones.
        for p in made:
            with contextlib.suppress(OSError):
                p.rmdir()
        raise


def _download_into(d: Path, archive: CifarArchive, url: str, md5: str, timeout: float) -> Path:
    fd, tmp_name = tempfile.mkstemp(prefix=".cifar-", suffix=".tar.gz", dir=d)
    tmp = Path(tmp_name)
    pickle_dir = archive.pickle_dir
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as r:
                shutil.copyfileobj(r, out)
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            raise DataError(
                f"{archive.name} is not in {str(d)!r} and downloading it from {url} failed ({e}). "
                f"Offline? Put the data there yourself and pass --data-dir: {archive.layout}."
            ) from e
        got = md5sum(tmp)
        if got != md5:
            raise DataError(
                f"downloaded {url} is corrupt or truncated: MD5 {got}, expected {md5}; "
                f"nothing was unpacked, try again"
            )
        staging = Path(tempfile.mkdtemp(prefix=".cifar-unpack-", dir=d))
        try:
            with tarfile.open(tmp, "r:gz") as tar:
                tar.extractall(staging, filter="data")
            os.rename(staging / pickle_dir, d / pickle_dir)  # not over a folder that appeared since
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        tmp.unlink(missing_ok=True)
    return d / pickle_dir


download_cifar10 = download_cifar  # the CIFAR-10 archive is the default


# ---------------------------------------------------------------- readers
def _read_pickle_batch(path: Path, key: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 3, 32, 32) uint8, labels (N,)) of one pickle file; ``key``: its labels."""
    try:
        entry = load_pickle(path)
        raw = np.asarray(entry["data"], dtype=np.uint8)
        if raw.ndim != 2 or raw.shape[1] != 3 * 32 * 32:
            raise ValueError(f"'data' has shape {raw.shape}, expected (N, 3072)")
        data = raw.reshape(-1, 3, 32, 32)
        labels = np.asarray(entry[key], dtype=np.int64)
    except DataPickleRefused:
        raise
    except Exception as e:  # truncated file, wrong format, missing keys
        raise DataError(f"{str(path)!r} is not a readable CIFAR batch: {type(e).__name__} {e}") from e
    if len(data) != len(labels):
        raise DataError(f"{str(path)!r}: {len(data)} images but {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        bad = labels[(labels < 0) | (labels >= n_classes)][0]
        raise DataError(f"{str(path)!r}: label {int(bad)} is outside 0..{n_classes - 1}")
    return data, labels


def _class_names(d: Path, archive: CifarArchive, labels: str) -> tuple[str, ...]:
    """From the archive's meta file; CIFAR-10's list when it has none (it must have one for CIFAR-100)."""
    meta = d / archive.meta_file
    if not meta.is_file():
        if archive.coarse:
            raise DataError(f"{str(meta)!r} is missing: the class names of {archive.name} are in it")
        return CIFAR10_CLASSES
    try:
        return tuple(load_pickle(meta)[archive.names_key(labels)])
    except DataPickleRefused:
        raise
    except Exception as e:
        raise DataError(
            f"{str(meta)!r} is not a readable {archive.name} meta file: {type(e).__name__} {e}"
        ) from e


def read_pickle(d: Path, archive: CifarArchive = CIFAR10_ARCHIVE, labels: str = "fine") -> CifarArrays:
    classes = _class_names(d, archive, labels)
    key = archive.label_key(labels)
    xs, ys = zip(*(_read_pickle_batch(d / b, key, len(classes)) for b in archive.train_files))
    tx, ty = _read_pickle_batch(d / archive.test_file, key, len(classes))
    return CifarArrays(
        torch.from_numpy(np.concatenate(xs)),
        torch.from_numpy(np.concatenate(ys)),
        torch.from_numpy(tx),
        torch.from_numpy(ty),
        classes,
        f"pickle:{d}",
        "pickle",
    )


def read_imagefolder(root: Path, workers: int | None = None) -> CifarArrays:
    """train/<class>/* and test/<class>/*; classes are the sorted train folder names."""
    classes = class_folders(root / "train")
    test_classes = class_folders(root / "test")
    if test_classes != classes:
        raise DataError(f"train classes {classes} differ from test classes {test_classes}")
    out = []
    with ThreadPoolExecutor(workers or min(8, (os.cpu_count() or 1) * 2)) as pool:
        for split in ("train", "test"):
            items = labelled_files(root / split, classes)
            images = list(pool.map(decode_rgb, [p for p, _ in items], chunksize=256))
            odd = next((i for i, x in enumerate(images) if x.shape != images[0].shape), None)
            if odd is not None:
                (h, w), (h0, w0) = images[odd].shape[1:], images[0].shape[1:]
                raise DataError(
                    f"{split} images differ in size (a CIFAR tree holds one size): {str(items[odd][0])!r} "
                    f"is {w}x{h}, {str(items[0][0])!r} is {w0}x{h0}"
                )
            out += [torch.stack(images), torch.tensor([y for _, y in items], dtype=torch.int64)]
    return CifarArrays(*out, tuple(classes), f"imagefolder:{root}", "imagefolder")


# ---------------------------------------------------------------- cache
# Decoded data sets kept, the most recently used (CIFAR-10 decodes to 185 MB). A key names a
# source's path and file dates, so each re-unpacked or moved copy of a data set made a new
# entry that nothing read again: 68 entries, 2.3 GB after two days of studies on one machine.
CACHE_KEEP = 4
_CACHE_NAME = re.compile(r"cifar10-[0-9a-f]{20}\.pt")  # only what load_cifar writes


def _cache_entries(directory: Path) -> list[tuple[int, Path]]:
    """(last use in ns, path) of every decoded data set in ``directory``, newest first."""
    found = []
    for p in directory.glob("cifar10-*.pt"):
        with contextlib.suppress(OSError):  # another process may prune it meanwhile
            if _CACHE_NAME.fullmatch(p.name):
                found.append((p.stat().st_mtime_ns, p))
    return sorted(found, reverse=True)


def prune_cache(directory: Path, keep: int = CACHE_KEEP) -> list[Path]:
    """Delete all but the ``keep`` most recently used decoded data sets; return the deleted.
    A hit renews its entry's mtime (load_cifar), so "used" means read or written."""
    gone = [p for _, p in _cache_entries(directory)[keep:]]
    for p in gone:
        p.unlink(missing_ok=True)
    return gone


def source_key(fmt: str, root: Path, archive: CifarArchive = CIFAR10_ARCHIVE, labels: str = "fine") -> str:
    """A hash of every source file's relative path, size and mtime: edits invalidate it."""
    h = hashlib.sha1(f"{fmt}:{root.resolve()}".encode())
    if archive.coarse:
        h.update(f"{archive.name}:{labels};".encode())  # (CIFAR-10 keys stay as they were)
    files = (
        [root / b for b in (*archive.train_files, archive.test_file)]
        if fmt == "pickle"
        else sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
    )
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(root)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:20]


def load_cifar(
    data_dir: str | os.PathLike = "./data/cifar10",
    *,
    archive: CifarArchive = CIFAR10_ARCHIVE,
    labels: str = "fine",
    download: bool = True,
    use_cache: bool = True,
) -> CifarArrays:
    """Find (or download) the archive's data under ``data_dir`` and return it decoded, via
    the cache. ``labels``: CIFAR-100's "fine" (100) or "coarse" (20) labels."""
    if labels not in ("fine", "coarse") or (labels == "coarse" and not archive.coarse):
        kinds = "fine or coarse" if archive.coarse else "fine"
        raise ValueError(f"data.labels={labels!r}: {archive.name} has {kinds} labels")
    try:
        fmt, root = find_source(data_dir, archive)
    except FileNotFoundError as e:
        if not download:
            raise DataError(str(e)) from None
        download_cifar(data_dir, archive)
        fmt, root = find_source(data_dir, archive)
    if fmt == "imagefolder" and labels == "coarse":
        raise DataError(
            f"{str(root)!r} is an image-folder tree: its classes are its folders (no coarse labels)"
        )
    key = source_key(fmt, root, archive, labels) if use_cache else None
    path = cache_dir() / f"cifar10-{key}.pt" if key else None
    if path is not None and path.is_file():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            # Provenance names the path this call was given, not the one that built the cache.
            blob["source"] = f"{fmt}:{root}"
            with contextlib.suppress(OSError):
                os.utime(path)  # used now: prune_cache keeps the most recently used
            return CifarArrays(**blob)
        except Exception:  # a damaged cache is rebuilt, never trusted
            path.unlink(missing_ok=True)
    arrays = read_pickle(root, archive, labels) if fmt == "pickle" else read_imagefolder(root)
    if path is not None:
        try:
            atomic_torch_save(arrays.__dict__, path)
            prune_cache(path.parent)
        except OSError:
            pass  # an unwritable cache only costs time
    return arrays


load_cifar10 = load_cifar  # the CIFAR-10 archive is the default


def write_pickle_batch(path: Path, images: np.ndarray, labels: list[int], **more: list[int]) -> None:
    """Write one batch in the canonical format (for tests and small custom sets); ``more``:
    other label lists by key (CIFAR-100's ``fine_labels``, ``coarse_labels``)."""
    entry = {
        "batch_label": path.name,
        **({"labels": list(map(int, labels))} if labels is not None else {}),
        **{k: list(map(int, v)) for k, v in more.items()},
        "data": images.reshape(len(images), -1),
        "filenames": [f"{i}.png" for i in range(len(images))],
    }
    with open(path, "wb") as f:
        pickle.dump(entry, f)
