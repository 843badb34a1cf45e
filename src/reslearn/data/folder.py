"""Any folder of images (not in the paper): ``train/<class>/*`` with or without ``val/``.

Class names are the folder names. Without ``val/`` a seeded, stratified share of train/ is
held out for validation (``--val-split``, a count or a fraction; 10% when unset), and
``reslearn eval`` finds the same images again. Images of any size and mode are read
(greyscale, RGBA, CMYK, 16-bit: reslearn.data.imagefiles.decode_rgb). Small images (longer
side up to 64 px, CIFAR-like) get the CIFAR recipe's pipeline at their own size, held on
the device; larger ones the ImageNet recipe's, at ``--image-size`` (224 by default). In
both the mean is fitted on the user's training split.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from ..files import open_image
from .cifar import CifarArrays
from .imagefiles import DataError, class_folders, decode_rgb, labelled_files, stratified_holdout

SMALL = 64  # px: a longer side up to this is a small (CIFAR-like) image
DEFAULT_HOLDOUT = 0.1  # of train/, when there is no val/ and no --val-split
HOLDOUT_SEED = 0  # fixed, so that evaluation finds the same held-out images as training
DEFAULT_EPOCHS = 30  # the run's length unless --epochs/--iterations (not the paper's: its data is not yours)


@dataclass
class FolderSplits:
    classes: tuple[str, ...]
    train: list[tuple[Path, int]]
    val: list[tuple[Path, int]]
    how: str  # where the val split came from, in words


def legacy_options(options: dict) -> dict:
    """A data config saved before the hold-out by name (it has no ``holdout``): its
    val_split 0 meant the default hold-out, drawn by a seeded shuffle. Applied wherever a
    saved run's data is read again (resume, eval), so old runs keep their split."""
    if "holdout" in options:
        return options
    return {**options, "holdout": "seeded", "val_split": options.get("val_split") or None}


def folder_splits(
    root: Path, val_split: int | float | None = None, holdout: str = "name-hash"
) -> FolderSplits:
    """train/ and val/ (or the hold-out) of ``root``; a class of val/ missing from train/,
    an empty class or a single class is an error naming it. ``val_split``: None, the
    default (10% when there is no val/); 0: none (an error without val/: nothing would
    be left to evaluate); a count or a fraction (an error beside a val/)."""
    if not (root / "train").is_dir():
        raise DataError(f"no training images in {str(root)!r}: expected {root}/train/<class>/<images>")
    classes = class_folders(root / "train")
    items = labelled_files(root / "train", classes)
    if (root / "val").is_dir():
        if val_split:
            raise DataError(
                f"--val-split {val_split}: {str(root)!r} has a val/ folder, which is the validation "
                f"split; drop --val-split (or remove val/ to hold images out of train/)"
            )
        extra = sorted(set(class_folders(root / "val")) - set(classes))
        if extra:
            raise DataError(
                f"class {extra[0]!r} is in {str(root / 'val')!r} but not in {str(root / 'train')!r}"
            )
        return FolderSplits(tuple(classes), items, labelled_files(root / "val", classes), "val/")
    if val_split == 0:
        raise DataError(
            f"--val-split 0 holds nothing out and {str(root)!r} has no val/: nothing would be left to "
            f"evaluate; give a count or a fraction, or add {root}/val/<class>/<images>"
        )
    k = DEFAULT_HOLDOUT if val_split is None else val_split
    labels = [y for _, y in items]
    if holdout == "seeded":  # runs from before the hold-out by name keep theirs
        tr, va = stratified_holdout(labels, k, HOLDOUT_SEED)
        by = f"seed {HOLDOUT_SEED}"
    else:
        keys = [f"{p.parent.name}/{p.name}" for p, _ in items]
        tr, va = stratified_holdout(labels, k, order=keys)
        by = "by a hash of each file's name"
    share = f"{100 * k:g}%" if k < 1 else f"{k}"
    how = f"{len(va)} images ({share}) held out of train/, stratified, {by}"
    return FolderSplits(tuple(classes), [items[i] for i in tr], [items[i] for i in va], how)


def longest_side(root: Path, sample: int = 64) -> int:
    """The largest longer side among up to ``sample`` training images (headers only)."""
    files = sorted((root / "train").rglob("*"))
    sizes = []
    for p in [f for f in files if f.is_file() and not f.name.startswith(".")][
        :: max(1, len(files) // sample)
    ]:
        try:
            with open_image(p) as im:
                sizes.append(max(im.size))
        except Exception:
            continue  # not an image: the reader names it later
    if not sizes:
        raise DataError(f"no readable image under {str(root / 'train')!r}")
    return max(sizes)


def small_image_size(root: Path) -> int | None:
    """The side small images are trained at (their most common longer side), or None for
    large images."""
    side = longest_side(root)
    return side if side <= SMALL else None


def decode_small(items: list[tuple[Path, int]], size: int, skip_bad: bool = False):
    """(uint8 (N, 3, size, size), labels (N,)) of small images, each resized to size x size
    when it is not (antialiased), unreadable ones named (or skipped with ``skip_bad``)."""
    from torchvision.transforms.v2 import functional as TF

    xs, ys = [], []
    for path, label in items:
        try:
            x = decode_rgb(path)
        except DataError as e:
            if not skip_bad:
                raise
            print(f"reslearn: skipped {e}", file=sys.stderr, flush=True)  # as the ImageNet reader does
            continue
        xs.append(x if tuple(x.shape[1:]) == (size, size) else TF.resize(x, [size, size], antialias=True))
        ys.append(label)
    return torch.stack(xs), torch.tensor(ys, dtype=torch.int64)


def small_arrays(root: Path, splits: FolderSplits, size: int, skip_bad: bool) -> CifarArrays:
    tx, ty = decode_small(splits.train, size, skip_bad)
    vx, vy = decode_small(splits.val, size, skip_bad)
    return CifarArrays(tx, ty, vx, vy, splits.classes, describe(root, splits, size), "folder")


def describe(root: Path, splits: FolderSplits, size: int | None, image_size: int | None = None) -> str:
    """What was decided, for the run's header: the data's provenance and its pipeline."""
    n = Counter(y for _, y in splits.train)
    pipeline = (
        f"images up to {SMALL} px -> the CIFAR pipeline at {size}x{size}"
        if size
        else f"larger images -> the ImageNet pipeline at {image_size}x{image_size}"
    )
    return (
        f"folder:{root} ({len(splits.classes)} classes, {min(n.values())}-{max(n.values())} training images "
        f"a class; {pipeline}; val: {splits.how})"
    )
