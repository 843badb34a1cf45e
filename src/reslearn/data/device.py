"""The device-resident pipeline: the whole uint8 training set on the training device.

CIFAR-10 is 150 MB as uint8, so it fits on any GPU and in any RAM; batches are one index
operation, the paper's augmentation is a batched tensor op on the same device, and the
loop never waits on a host process (the "airbench" design; docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ..distributed import DistInfo
from ..recipes import RECIPES
from .augment import SmallImagePipeline, fit_normalizer
from .base import Batch, TrainDataBase, rank_block
from .cifar import CifarArrays


@dataclass
class TensorEvalSet:
    """An evaluation split held as tensors on the device; each process takes a disjoint share."""

    name: str
    x: torch.Tensor  # (N, 3, H, W) uint8
    y: torch.Tensor  # (N,) int64
    batch_size: int
    dist: DistInfo = DistInfo()
    source: str = ""  # provenance: format and path
    fully_convolutional = False  # scored with the ordinary forward

    def __len__(self) -> int:
        return len(self.x)

    def __iter__(self) -> Iterator[Batch]:
        # Contiguous blocks per process: the whole split is covered once, nothing padded.
        block = rank_block(len(self.x), self.dist.rank, self.dist.world_size)
        for i in range(block.start, block.stop, self.batch_size):
            j = min(i + self.batch_size, block.stop)
            yield self.x[i:j], self.y[i:j]


class DeviceData(TrainDataBase):
    """:class:`~reslearn.data.base.TrainData` over decoded arrays moved to ``device``."""

    def __init__(
        self,
        arrays: CifarArrays,
        *,
        batch_size: int,
        seed: int,
        device: torch.device,
        val_split: int = 0,
        normalize: str = "pixel",
        augment: bool = True,
        pad_fill: str = "black",
        eval_batch_size: int = RECIPES["cifar"].eval_batch_size,
        dist: DistInfo = DistInfo(),
        test_name: str = "test",
    ) -> None:
        """``test_name``: what the arrays' second split is ("val" when it was held out of
        the user's training images); ``pad_fill``: :class:`SmallImagePipeline`'s."""
        (tx, vx), (ty, vy) = (
            self.hold_out(arrays.train_x, val_split, seed),
            self.hold_out(arrays.train_y, val_split, seed),
        )
        self.set_up(classes=arrays.classes, source=arrays.source, format=arrays.format,
                    num_train=len(tx), batch_size=batch_size, seed=seed, device=device, dist=dist,
                    augment=augment)  # fmt: skip
        self.train_x, self.train_y = tx.to(device), ty.to(device)
        normalizer = fit_normalizer(tx, normalize).to(device)  # training split only
        self.pipeline = SmallImagePipeline(normalizer, self.generator, dist, augment, pad_fill)
        test = TensorEvalSet(
            test_name, arrays.test_x.to(device), arrays.test_y.to(device), eval_batch_size, dist
        )
        val = (
            None if vx is None else TensorEvalSet("val", vx.to(device), vy.to(device), eval_batch_size, dist)
        )
        self.set_eval(val, **{test_name: test})

    def epoch_indices(self, epoch: int) -> torch.Tensor:
        return super().epoch_indices(epoch).to(self.device)

    def batches(self, epoch: int, start: int) -> Iterator[Batch]:
        perm, bs = self.epoch_indices(epoch), self.batch_size
        for pos in range(start, self.steps_per_epoch()):
            idx = self.dist.shard(perm[pos * bs : (pos + 1) * bs])
            yield self.preprocess_train(self.train_x[idx], bs), self.train_y[idx]

    def preprocess_train(self, xb: torch.Tensor, global_batch: int) -> torch.Tensor:
        """(B, 3, 32, 32) uint8, this process's share of a global batch -> augmented,
        normalised float (the recipe's pipeline)."""
        return self.pipeline(xb, global_batch)
