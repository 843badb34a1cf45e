"""ImageNet-layout folders (``train/<wnid>/*.JPEG``, ``val/<wnid>/*.JPEG``), streamed.

The streaming :class:`~reslearn.data.base.TrainData` for the paper's ImageNet recipe
(Section 3.4): DataLoader workers decode each photo (a reduced-size DCT decode when the
target is much smaller), resize its shorter side to a random integer in [256, 480], take a
random 224x224 crop or its flip. On the training device the batch then gets the PCA
lighting noise and the per-pixel mean subtraction. Every random choice of a sample is
drawn from a generator seeded by (seed, epoch, image index), so the batches do not
depend on the number of workers and a resumed run sees exactly the same images.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..distributed import DistInfo
from ..files import atomic_torch_save, cache_dir
from ..recipes import RECIPES
from .augment import (
    TORCHVISION_MEAN,
    TORCHVISION_STD,
    Normalizer,
    PhotoPipeline,
    center_crop,
    center_view,
    resize_shorter,
    scale_crop_flip,
)
from .base import TrainDataBase, make_loader, rank_block
from .imagefiles import DataError, class_folders, decode_rgb, labelled_files

TRAIN_SCALE = (256, 480)  # shorter side range at 224x224 crops (Section 3.4)


# ---------------------------------------------------------------- classes
@dataclass(frozen=True)
class ClassIndex:
    """The standard output order: wnids[i] is class i, names[i] its name."""

    wnids: tuple[str, ...]
    names: tuple[str, ...]

    def label(self, wnid: str) -> int:
        return self.wnids.index(wnid)


IMAGENET_CLASSES_TSV = Path(__file__).parent / "imagenet_classes.tsv"


def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in the standard order (shipped with reslearn)."""
    return read_class_index(IMAGENET_CLASSES_TSV).names


def read_class_index(path: str | os.PathLike) -> ClassIndex:
    """A tab-separated ``index  wnid  name`` file (``imagenet-classes.tsv``): indices must
    be 0..K-1 in order, each wnid once."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"class index {str(path)!r} does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{str(p)!r} is not UTF-8 text (byte {e.start}): not a class index") from None
    # (line number in the file, fields): the numbers a user's editor shows
    rows = [(n, ln.split("\t")) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    if rows and rows[0][1][0].strip().lower() == "index":
        rows = rows[1:]
    wnids, names = [], []
    for i, (n, row) in enumerate(rows):
        if len(row) < 2 or not row[0].strip().isdigit() or int(row[0]) != i:
            raise DataError(f"{str(p)!r} line {n}: expected '{i}<TAB>wnid<TAB>name', got {row!r}")
        wnids.append(row[1].strip())
        names.append(row[2].strip() if len(row) > 2 else row[1].strip())
    dup = sorted({w for w in wnids if wnids.count(w) > 1})
    if dup:
        raise DataError(f"{str(p)!r} lists wnids more than once: {dup[:5]}")
    if not wnids:
        raise DataError(f"{str(p)!r} lists no classes")
    return ClassIndex(tuple(wnids), tuple(names))


def list_split(split_dir: Path, index: ClassIndex | None) -> tuple[list[tuple[Path, int]], tuple[str, ...]]:
    """(file, label) pairs of ``split_dir/<wnid>/*`` and the class names. With an index,
    labels are the standard indices and an unknown folder is an error; without one,
    the classes are the sorted folder names."""
    folders = class_folders(split_dir)
    if index is not None:
        unknown = [f for f in folders if f not in index.wnids]
        if unknown:
            raise DataError(f"folders of {str(split_dir)!r} missing from the class index: {unknown[:5]}")
        labels, classes = {f: index.label(f) for f in folders}, index.names
    else:
        labels, classes = {f: i for i, f in enumerate(folders)}, tuple(folders)
    items = [(p, labels[folders[i]]) for p, i in labelled_files(split_dir, folders)]
    return items, classes


# ---------------------------------------------------------------- decoding
def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 10_000_019 + index)


class _TrainImages(Dataset):
    """Index -> the paper's random training view of that image (or None if unreadable
    and skipping is on)."""

    def __init__(self, items, seed: int, crop: int, scale: tuple[int, int], augment: bool, skip_bad: bool):
        self.items, self.seed, self.crop, self.scale = items, seed, crop, scale
        self.augment, self.skip_bad, self.epoch = augment, skip_bad, 0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        path, label = self.items[i]
        g = sample_generator(self.seed, self.epoch, i)
        lo, hi = self.scale
        shorter = int(torch.randint(lo, hi + 1, (1,), generator=g)) if self.augment else lo
        try:
            img = decode_rgb(path, shorter)
        except DataError as e:
            if not self.skip_bad:
                raise
            print(f"reslearn: skipped {e}", file=sys.stderr, flush=True)
            return None
        if self.augment:
            return scale_crop_flip(img, shorter, self.crop, g), label
        return center_crop(resize_shorter(img, shorter), self.crop), label


def _collate_train(samples):
    good = [s for s in samples if s is not None]
    skipped = len(samples) - len(good)
    if not good:
        return None, None, skipped
    x = torch.stack([s[0] for s in good])
    return x, torch.tensor([s[1] for s in good], dtype=torch.int64), skipped


class _ViewImages(Dataset):
    """Index -> (list of views of one image, label), for evaluation."""

    def __init__(self, items, view_fn, size: int):
        self.items, self.view_fn, self.size = items, view_fn, size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        path, label = self.items[i]
        img = decode_rgb(path)
        return [v[0] for v in self.view_fn(img[None], self.size)], label


def _collate_views(samples):
    n_views = len(samples[0][0])
    views = [torch.stack([s[0][v] for s in samples]) for v in range(n_views)]
    return views, torch.tensor([s[1] for s in samples], dtype=torch.int64)


_loader = make_loader


class ImageFolderEvalSet:
    """The val/ split with test-time views made per image by the workers (the views of
    one image share a size; images of a batch do too, except for multi-scale views,
    which are scored one image at a time). ``view_fn((N, 3, H, W), size)`` makes the
    views (reslearn.evaluate.views: the data knows no protocol); default: the single
    centre view. ``fully_convolutional``: how the caller must score them."""

    def __init__(
        self,
        name,
        items,
        size: int,
        batch_size: int,
        workers: int,
        device,
        dist: DistInfo = DistInfo(),
        view_fn=center_view,
        fully_convolutional: bool = False,
    ):
        self.name, self.items, self.size = name, items, size
        self.view_fn, self.fully_convolutional = view_fn, fully_convolutional
        self.batch_size = batch_size
        self.workers, self.device, self.dist = workers, device, dist

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        block = rank_block(len(self.items), self.dist.rank, self.dist.world_size)
        plan = [list(block[i : i + self.batch_size]) for i in range(0, len(block), self.batch_size)]
        ds = _ViewImages(self.items, self.view_fn, self.size)
        for views, y in _loader(ds, plan, self.workers, self.device, _collate_views):
            yield [v.to(self.device, non_blocking=True) for v in views], y.to(self.device, non_blocking=True)


class ImageNetData(TrainDataBase):
    """:class:`~reslearn.data.base.TrainData` for ImageNet-layout folders.

    ``image_size``: the crop (224 in the paper); a smaller one scales the resize range
    and the test views with it (for CPUs). ``normalize``: "pixel" (the paper: the mean
    image of a sample of training crops) or "channel" (torchvision's mean/std, what its
    weights need). ``lighting``: std of the PCA noise (0.1; 0 = off).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        batch_size: int,
        seed: int,
        device: torch.device,
        class_index: str | None = None,
        image_size: int = 224,
        normalize: str = "pixel",
        augment: bool = True,
        lighting: float = 0.1,
        eval_batch_size: int = RECIPES["imagenet"].eval_batch_size,
        workers: int = 0,
        skip_bad_images: bool = False,
        mean_sample: int = 500,
        dist: DistInfo = DistInfo(),
        splits: tuple[list, list, tuple[str, ...], str] | None = None,
    ) -> None:
        """``splits``: (train items, val items, classes, source) already listed (a folder
        whose val split is held out of train/, reslearn.data.folder); else from ``root``."""
        root = Path(root).expanduser()
        if splits is None:
            splits = self.list_root(root, class_index)
        self.items, val_items, classes, source = splits
        self.set_up(classes=classes, source=source, format="imagenet-folder", num_train=len(self.items),
                    batch_size=batch_size, seed=seed, device=device, dist=dist, augment=augment)  # fmt: skip
        self.size, self.lighting, self.skip_bad = image_size, lighting, skip_bad_images
        self.scale = tuple(round(s * image_size / 224) for s in TRAIN_SCALE)
        self.workers = workers or (os.cpu_count() or 1)
        self.skipped = 0  # unreadable training images skipped so far (this session)
        normalizer = self._normalizer(normalize, mean_sample).to(device)
        self.pipeline = PhotoPipeline(normalizer, self.generator, dist, augment, lighting)
        self.set_eval(
            ImageFolderEvalSet("val", val_items, image_size, eval_batch_size, self.workers, device, dist)
        )
        self.val_items = val_items

    @staticmethod
    def list_root(root: Path, class_index: str | None):
        for split in ("train", "val"):
            if not (root / split).is_dir():
                raise DataError(
                    f"no ImageNet-layout data in {str(root)!r}: expected {root}/train/<wnid>/*.JPEG "
                    f"and {root}/val/<wnid>/*.JPEG"
                )
        index = read_class_index(class_index) if class_index else None
        items, classes = list_split(root / "train", index)
        return items, list_split(root / "val", index)[0], classes, f"imagefolder:{root}"

    def _normalizer(self, normalize: str, sample: int) -> Normalizer:
        if normalize == "channel":
            return Normalizer(
                torch.tensor(TORCHVISION_MEAN)[:, None, None], torch.tensor(TORCHVISION_STD)[:, None, None]
            )
        if normalize != "pixel":
            raise ValueError(f"normalize must be 'pixel' or 'channel', got {normalize!r}")
        return Normalizer(self.mean_image(sample))

    def mean_image(self, sample: int) -> torch.Tensor:
        """The per-pixel mean of centre crops of a seeded sample of training images, in
        [0, 1] units (3, S, S); cached (keyed by the files, the sample and the size)."""
        n = min(sample, self.num_train)
        idx = torch.randperm(self.num_train, generator=torch.Generator().manual_seed(0))[:n].tolist()
        key = f"{self.source}:{n}:{self.size}:" + ",".join(f"{self.items[i][0].name}" for i in idx[:50])
        import hashlib

        path = cache_dir() / f"mean-{hashlib.sha1(key.encode()).hexdigest()[:16]}.pt"
        if path.is_file():
            try:
                return torch.load(path, weights_only=True)
            except Exception:
                path.unlink(missing_ok=True)
        ds = _TrainImages(
            self.items,
            0,
            self.size,
            (round(256 * self.size / 224),) * 2,
            augment=False,
            skip_bad=self.skip_bad,
        )
        total, count = torch.zeros(3, self.size, self.size, dtype=torch.float64), 0
        batches = [idx[i : i + 64] for i in range(0, n, 64)]
        for x, _, _ in _loader(
            ds, batches, self.workers if n > 256 else 0, torch.device("cpu"), _collate_train
        ):
            if x is not None:
                total += x.double().sum(0) / 255.0
                count += len(x)
        mean = (total / max(count, 1)).float()
        try:
            atomic_torch_save(mean, path)
        except OSError:
            pass
        return mean

    def batches(self, epoch: int, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        perm, bs = self.epoch_indices(epoch), self.batch_size
        steps = range(start, self.steps_per_epoch())
        plan = [self.dist.shard(perm[p * bs : (p + 1) * bs]).tolist() for p in steps]
        ds = _TrainImages(self.items, self.seed, self.size, self.scale, self.augment, self.skip_bad)
        ds.epoch = epoch
        for x, y, skipped in _loader(ds, plan, self.workers, self.device, _collate_train):
            self.skipped += skipped
            if x is None:
                continue
            yield (
                self.pipeline(x.to(self.device, non_blocking=True), bs),
                y.to(self.device, non_blocking=True),
            )

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "skipped": self.skipped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.skipped = int(state.get("skipped", 0))
