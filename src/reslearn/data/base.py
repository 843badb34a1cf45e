"""What the training loop needs from data, and nothing more.

The loop asks a :class:`TrainData` for this process's batches of a given epoch,
starting at a given step; it never learns where the images live or how they are
decoded. Two implementations: :class:`~reslearn.data.device.DeviceData` (the whole uint8
set on the training device; the CIFAR default) and
:class:`~reslearn.data.stream.StreamData` (image files read by DataLoader workers).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from .augment import Normalizer

Batch = tuple[torch.Tensor, torch.Tensor]  # (B, 3, H, W) images, (B,) int64 labels


class EvalSet(Protocol):
    """An evaluation split: uint8 image batches (N, 3, H, W) and labels, on the device."""

    name: str

    def __len__(self) -> int:
        """Images in the split (all processes together)."""
        ...

    def __iter__(self) -> Iterator[Batch]:
        """This process's share of the split, in batches."""
        ...


class TrainData(Protocol):
    classes: tuple[str, ...]
    num_train: int
    """Training images (all processes together)."""
    batch_size: int
    """The global mini-batch; each process draws its share of it."""
    source: str
    """Provenance: format and the path the user gave."""
    format: str
    normalizer: Normalizer
    """The preprocessing stored with the model (fitted on the training split only)."""

    def steps_per_epoch(self) -> int:
        """Iterations per epoch (the last partial batch is dropped)."""
        ...

    def batches(self, epoch: int, start: int) -> Iterator[Batch]:
        """Preprocessed (augmented, normalised, float) batches of ``epoch`` from step
        ``start`` on, on the training device. The order is a function of (seed, epoch)."""
        ...

    def eval_sets(self) -> dict[str, EvalSet]:
        """ "test", and "val" when part of the training set is held out."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Random state of the augmentation (the order needs none: see ``batches``)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class DataSet:
    """One entry of the data-set registry (reslearn.data.datasets): what the rest of
    reslearn asks of a data set.

    ``train_data(d, *, recipe, batch_size, seed, device, dist, eval_batch_size)``: the
    :class:`TrainData` of the resolved data config ``d`` (a DataConfig) for ``recipe``.
    ``eval_split(data_dir, options, classes, *, view, recipe, batch_size, workers, device)``: the
    split a trained net is tested on (``options``: its saved data config; ``classes``: its
    class names; ``view``: a reslearn.evaluate TestView); it has ``fully_convolutional``
    when the view needs the fully-convolutional form. ``inference_view(img, size, recipe)``:
    uint8 (3, H, W) -> (3, size, size), the input ``reslearn.load``'s preprocess gives a net
    trained with ``recipe``. ``detect(root)``: whether a folder holds this data set
    (``data.dataset auto``). ``classes()``: its fixed class names, when it has them.
    ``recipe``: the paper's recipe for it; ``decide(data_config)``, when given, chooses per
    folder: {"recipe", "image_size", "epochs", "train_images"} (reslearn.data.folder).
    ``default_dir`` and ``where``: where it is looked for and how to get it.
    """

    name: str
    recipe: str
    default_dir: str
    detect: Callable[[Any], bool]
    train_data: Callable[..., TrainData]
    eval_split: Callable[..., EvalSet]
    inference_view: Callable[[torch.Tensor, int, str], torch.Tensor]
    classes: Callable[[], tuple[str, ...]] | None = None
    where: str = ""
    decide: Callable[[Any], dict] | None = None


class TrainDataBase:
    """The base of every training data set (device, stream, ImageNet, DALI): the set-up
    they share (the hold-out, the batch check, the augmentation generator, the evaluation
    splits), iterations per epoch, the epoch's order, and the generator as the data's
    resumable state. A subclass lists its images, then calls :meth:`set_up`."""

    num_train: int
    batch_size: int
    generator: torch.Generator
    _eval: dict[str, EvalSet]

    @staticmethod
    def hold_out(items, val_split: int | float, seed: int):
        """(train, held out) of a list or a tensor of images: ``val_split`` of them (a count
        or a fraction) held out by the seed (the paper's 45k/5k); (items, None) for none."""
        if not val_split:
            return items, None
        tr, va = holdout_split(len(items), val_split, seed)
        if isinstance(items, torch.Tensor):
            return items[tr], items[va]
        return [items[i] for i in tr.tolist()], [items[i] for i in va.tolist()]

    def set_up(self, *, classes, source: str, format: str, num_train: int, batch_size: int,
               seed: int, device: torch.device, dist, augment: bool) -> None:  # fmt: skip
        """What every training set holds; a batch larger than the images is refused."""
        if num_train < batch_size:
            raise ValueError(f"batch_size={batch_size} exceeds the {num_train} training images")
        self.classes, self.source, self.format = tuple(classes), source, format
        self.num_train, self.batch_size, self.seed = num_train, batch_size, seed
        self.device, self.dist, self.augment = device, dist, augment
        # The augmentation's own stream: resumable (state_dict), apart from the model's RNG.
        self.generator = torch.Generator(device=device).manual_seed(seed + 12345)

    @property
    def normalizer(self) -> Normalizer:
        """The pipeline's: replacing it (a checkpoint's on resume, a fine-tuning source's)
        replaces what the training batches are normalised with."""
        return self.pipeline.normalizer

    @normalizer.setter
    def normalizer(self, value: Normalizer) -> None:
        self.pipeline.normalizer = value

    def set_eval(self, held_out: EvalSet | None, **splits: EvalSet) -> None:
        """The evaluation splits: the held-out one first (as ``val``) when there is one."""
        self._eval = {**({"val": held_out} if held_out is not None else {}), **splits}

    def steps_per_epoch(self) -> int:
        return self.num_train // self.batch_size

    def epoch_indices(self, epoch: int) -> torch.Tensor:
        return epoch_permutation(self.num_train, self.seed, epoch)

    def fingerprint(self) -> str | None:
        """A digest of the training list (issue 32): each image's class folder, file name and
        label (file data sets), or the decoded uint8 images and labels (in-memory sets), and
        the class names. The same data moved elsewhere keeps it; an image added, removed or
        relabelled (and, in memory, edited) changes it. None: not known for this data."""
        items = getattr(self, "items", None)
        x, y = getattr(self, "train_x", None), getattr(self, "train_y", None)
        if items is not None:
            return list_fingerprint(self.classes, items)
        h = hashlib.sha256("|".join(self.classes).encode())
        if x is not None and y is not None:
            h.update(x.cpu().contiguous().numpy().tobytes())
            h.update(y.cpu().contiguous().numpy().tobytes())
        else:
            return None
        return h.hexdigest()[:16]

    def eval_sets(self) -> dict[str, EvalSet]:
        return dict(self._eval)

    def state_dict(self) -> dict[str, Any]:
        return {"augment": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["augment"])


def list_fingerprint(classes, items) -> str:
    """:meth:`TrainDataBase.fingerprint` of a file list: the class names, then each image's
    class folder, file name and label (so the same data moved elsewhere keeps it)."""
    h = hashlib.sha256("|".join(classes).encode())
    for path, label in items:
        h.update(f"{Path(path).parent.name}/{Path(path).name}:{label};".encode())
    return h.hexdigest()[:16]


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of one epoch: a function of (seed, epoch) only, so resumable, and
    the same on every process (each then takes its own share of every batch)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def holdout_split(n: int, k: int | float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val) with ``k`` images (or the fraction ``k`` < 1) held out (the
    paper's 45k/5k), by the seed."""
    k = round(k * n) if k < 1 else int(k)
    if k >= n:
        raise ValueError(f"val_split={k} leaves no training images (train split has {n})")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[k:], perm[:k]


def make_loader(ds, batches: list[list[int]], workers: int, device: torch.device, collate):
    """A DataLoader over a fixed plan of batches (our order, not a sampler's): pinned memory
    on CUDA, prefetching workers, and its own generator (a DataLoader otherwise draws its
    worker seed from the global RNG, which would shift the model's initialisation)."""
    from torch.utils.data import DataLoader

    return DataLoader(
        ds,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if workers else None,
        generator=torch.Generator().manual_seed(0),
    )


def rank_block(n: int, rank: int, world_size: int) -> range:
    """A process's contiguous share of n evaluation items: disjoint, covering, unpadded."""
    return range(n * rank // world_size, n * (rank + 1) // world_size)
