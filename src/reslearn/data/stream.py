"""The streaming pipeline: image files decoded by DataLoader workers, batch by batch.

For data that does not fit on the device (ImageNet) or that should not be decoded up
front. Workers decode files to uint8 (N, 3, H, W) batches; augmentation and
normalisation then run on the training device as the same batched tensor functions as
the device-resident pipeline, with the same seeded generator, so the two pipelines give
identical batches on the same images (tested).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..distributed import DistInfo
from ..recipes import RECIPES
from .augment import Normalizer, SmallImagePipeline, fit_normalizer
from .base import Batch, TrainDataBase, make_loader, rank_block
from .imagefiles import DataError, class_folders, decode_rgb, labelled_files

EVAL_SPLITS = ("test", "val")  # CIFAR trees name it test/, ImageNet trees val/


class _Files(Dataset):
    def __init__(self, items: list[tuple[Path, int]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.items[i]
        return decode_rgb(path), label


def _collate(samples: list[tuple[torch.Tensor, int]]) -> Batch:
    shapes = {tuple(x.shape) for x, _ in samples}
    if len(shapes) != 1:
        raise DataError(f"images of one batch differ in size: {sorted(shapes)[:4]}")
    return torch.stack([x for x, _ in samples]), torch.tensor([y for _, y in samples], dtype=torch.int64)


def _loader(ds: Dataset, batches: list[list[int]], workers: int, device: torch.device):
    return make_loader(ds, batches, workers, device, _collate)


class FileEvalSet:
    """An evaluation split read from files; each process takes a disjoint contiguous share."""

    def __init__(self, name, items, batch_size, workers, device, dist: DistInfo = DistInfo()) -> None:
        self.name, self.items, self.batch_size = name, items, batch_size
        self.workers, self.device, self.dist = workers, device, dist

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Batch]:
        block = rank_block(len(self.items), self.dist.rank, self.dist.world_size)
        batches = [list(block[i : i + self.batch_size]) for i in range(0, len(block), self.batch_size)]
        for x, y in _loader(_Files(self.items), batches, self.workers, self.device):
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


class StreamData(TrainDataBase):
    """:class:`~reslearn.data.base.TrainData` over an image-folder tree ``root/train/<class>/*``
    with ``root/test/`` or ``root/val/``, decoded by ``workers`` DataLoader processes.

    The images of one batch must share a size (the CIFAR layout; the ImageNet issue adds
    resizing). ``mean_sample``: images the per-pixel mean is fitted on (a seeded sample
    of the training split; all of them when the split is smaller).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        batch_size: int,
        seed: int,
        device: torch.device,
        val_split: int = 0,
        normalize: str = "pixel",
        augment: bool = True,
        pad_fill: str = "black",
        eval_batch_size: int = RECIPES["cifar"].eval_batch_size,
        workers: int = 0,
        mean_sample: int = 10_000,
        dist: DistInfo = DistInfo(),
    ) -> None:
        root = Path(root).expanduser()
        if not (root / "train").is_dir():
            raise DataError(
                f"no image-folder data in {str(root)!r}: expected {root}/train/<class>/* "
                f"and {root}/test/<class>/* (or val/)"
            )
        classes = class_folders(root / "train")
        items, held = self.hold_out(labelled_files(root / "train", classes), val_split, seed)
        self.set_up(classes=classes, source=f"imagefolder:{root}", format="imagefolder",
                    num_train=len(items), batch_size=batch_size, seed=seed, device=device, dist=dist,
                    augment=augment)  # fmt: skip
        self.items = items
        self.workers = workers or (os.cpu_count() or 1)
        normalizer = self._fit(normalize, mean_sample)
        self.pipeline = SmallImagePipeline(normalizer, self.generator, dist, augment, pad_fill)
        eval_dir = next((root / s for s in EVAL_SPLITS if (root / s).is_dir()), None)
        if eval_dir is None:
            raise DataError(f"{str(root)!r} has no test/ or val/ split")
        test = FileEvalSet(
            "test", labelled_files(eval_dir, classes), eval_batch_size, self.workers, device, dist
        )
        val = None if held is None else FileEvalSet("val", held, eval_batch_size, self.workers, device, dist)
        self.set_eval(val, test=test)

    def _fit(self, normalize: str, sample: int) -> Normalizer:
        idx = range(self.num_train)
        if self.num_train > sample:
            idx = torch.randperm(self.num_train, generator=torch.Generator().manual_seed(0))[:sample].tolist()
        batches = [list(idx)[i : i + 1000] for i in range(0, len(idx), 1000)]
        xs = [
            x
            for x, _ in _loader(
                _Files(self.items), batches, 0 if len(idx) < 2000 else self.workers, torch.device("cpu")
            )
        ]
        return fit_normalizer(torch.cat(xs), normalize).to(self.device)

    def batches(self, epoch: int, start: int) -> Iterator[Batch]:
        perm, bs = self.epoch_indices(epoch), self.batch_size
        steps = range(start, self.steps_per_epoch())
        plan = [self.dist.shard(perm[p * bs : (p + 1) * bs]).tolist() for p in steps]
        for xb, yb in _loader(_Files(self.items), plan, self.workers, self.device):
            xb, yb = xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)
            yield self.pipeline(xb, bs), yb
