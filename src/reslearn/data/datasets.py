"""The data-set registry: one :class:`~reslearn.data.base.DataSet` entry per data set.

Everything the rest of reslearn asks of a data set goes through its entry: the training
data (engine), the evaluation split of a trained net (``reslearn eval``, layer
responses), the inference view stored with a net (``reslearn.load``, ``predict``), the
class names, the paper's recipe for it and where it lives. ``data.dataset`` names the
entry; ``auto`` finds it from the folder (:func:`detect_dataset`). A new data set is one
entry (a new file, or a call of :func:`register_dataset`) and nothing else.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import torch

from ..recipes import get_recipe
from ..registry import Registry
from .augment import center_view
from .base import DataSet, TrainData, list_fingerprint
from .cifar import CIFAR10_ARCHIVE, CIFAR10_CLASSES, CIFAR100_ARCHIVE, CifarArchive, load_cifar
from .device import DeviceData, TensorEvalSet
from .folder import (
    DEFAULT_EPOCHS,
    decode_small,
    describe,
    folder_splits,
    legacy_options,
    small_arrays,
    small_image_size,
)
from .imagefiles import DataError
from .imagenet import (
    IMAGENET_CLASSES_TSV,
    ImageFolderEvalSet,
    ImageNetData,
    imagenet_classes,
    list_split,
    read_class_index,
)
from .stream import StreamData


# ---------------------------------------------------------------- CIFAR-10 and CIFAR-100 (Section 4.2)
def _cifar_train(archive: CifarArchive):
    def train_data(d, *, recipe: str, **common) -> TrainData:
        """The whole uint8 set on the device (default), or streamed from an image-folder tree."""
        common.update(val_split=d.val_split, normalize=d.normalize, augment=d.augment, pad_fill=d.pad_fill)
        if d.loader == "stream":
            if not Path(d.data_dir).expanduser().is_dir():
                raise DataError(f"data directory {d.data_dir!r} does not exist")
            return StreamData(d.data_dir, workers=d.workers, **common)
        arrays = load_cifar(d.data_dir, archive=archive, labels=d.labels, download=d.download)
        return DeviceData(arrays, **common)

    return train_data


def _cifar_eval(archive: CifarArchive, default_dir: str):
    def eval_split(
        data_dir: str, options: dict, classes, *, view, recipe: str, batch_size: int, workers: int, device
    ):
        """The test split, one original 32x32 view per image (Section 4.2)."""
        if view.name != "single":
            raise ValueError(
                f"--views {view.name}: CIFAR nets are tested on the single original view (Section 4.2)"
            )
        own = data_dir == options.get("data_dir")
        if own and not Path(data_dir).expanduser().exists():
            # A checkpoint names the folder of the machine that trained it (a published net's,
            # ours). Never create that path here: look in (or download to) the default folder,
            # as `reslearn train` would, and say so.
            print(
                f"reslearn: {data_dir!r}, where this net's data was, is not here; testing on "
                f"{default_dir!r} instead (--data-dir DIR chooses)",
                file=sys.stderr,
            )
            data_dir = default_dir
        labels, download = options.get("labels", "fine"), bool(options.get("download")) and own
        data = load_cifar(data_dir, archive=archive, labels=labels, download=download)
        if len(data.classes) != len(classes):
            raise ValueError(f"{data_dir!r} has {len(data.classes)} classes, the model {len(classes)}")
        x, y = data.test_x.to(device), data.test_y.to(device)
        return TensorEvalSet("test", x, y, batch_size, source=data.source)

    return eval_split


def resize_to(x: torch.Tensor, size: int, recipe: str = "cifar") -> torch.Tensor:
    """(3, H, W) -> (3, size, size): a CIFAR-recipe net's input (kept as is at that size)."""
    if tuple(x.shape[-2:]) == (size, size):
        return x
    from torchvision.transforms.v2 import functional as TF

    return TF.resize(x, [size, size], antialias=True)


CIFAR10_DIR, CIFAR100_DIR = "./data/cifar10", "./data/cifar100"  # where absent data is downloaded to
CIFAR10 = DataSet(
    name="cifar10",
    recipe="cifar",
    default_dir=CIFAR10_DIR,
    detect=lambda root: True,  # the fallback: an absent folder is where it is downloaded to
    train_data=_cifar_train(CIFAR10_ARCHIVE),
    eval_split=_cifar_eval(CIFAR10_ARCHIVE, CIFAR10_DIR),
    inference_view=resize_to,
    classes=lambda: CIFAR10_CLASSES,
    where=CIFAR10_ARCHIVE.layout + "; downloaded (MD5-checked) when absent",
)
CIFAR100 = DataSet(
    name="cifar100",
    recipe="cifar",
    default_dir=CIFAR100_DIR,
    detect=lambda root: any(
        (d / "meta").is_file() and (d / "train").is_file() for d in (root, root / "cifar-100-python")
    ),
    train_data=_cifar_train(CIFAR100_ARCHIVE),
    eval_split=_cifar_eval(CIFAR100_ARCHIVE, CIFAR100_DIR),
    inference_view=resize_to,
    where=CIFAR100_ARCHIVE.layout + "; downloaded (MD5-checked) when absent",
)


# ---------------------------------------------------------------- ImageNet (Section 3.4)
def is_imagenet_layout(root: Path) -> bool:
    return (root / "train").is_dir() and (root / "val").is_dir() and not (root / "test").is_dir()


def _imagenet_train(d, *, recipe: str, eval_batch_size: int, **common) -> TrainData:
    """The paper's ImageNet pipeline; a CIFAR-recipe run on the same folders streams them
    with the CIFAR augmentation (val/ as its test split)."""
    common.update(normalize=d.normalize, augment=d.augment, workers=d.workers)
    if not get_recipe(recipe).photos:
        return StreamData(
            d.data_dir, eval_batch_size=eval_batch_size, val_split=d.val_split, pad_fill=d.pad_fill, **common
        )
    kind = ImageNetData
    if d.loader == "dali":
        from .dali import DaliImageNetData as kind  # optional dependency (NVIDIA DALI)
    return kind(
        d.data_dir,
        class_index=d.class_index,
        image_size=d.image_size,
        lighting=d.lighting,
        eval_batch_size=eval_batch_size,
        skip_bad_images=d.skip_bad_images,
        **common,
    )


def _imagenet_eval(
    data_dir: str, options: dict, classes, *, view, recipe: str, batch_size: int, workers: int, device
):
    """The val/ split with the test view asked for, labelled as the net's classes (an
    ImageNet-1k net, e.g. torchvision's, by the standard class index)."""
    root = Path(data_dir).expanduser()
    if not (root / "val").is_dir():
        raise ValueError(f"no val/ split in {str(root)!r} (expected {root}/val/<wnid>/*.JPEG)")
    index_file = options.get("class_index")
    if index_file is None and tuple(classes) == imagenet_classes():
        index_file = IMAGENET_CLASSES_TSV
    index = read_class_index(index_file) if index_file else None
    items, found = list_split(root / "val", index)
    if len(found) != len(classes):
        raise ValueError(f"{str(root / 'val')!r} has {len(found)} classes, the model {len(classes)}")
    if index is None and list(found) != list(classes):
        raise ValueError(f"the val/ folders {list(found)[:5]}... are not the checkpoint's classes")
    return ImageFolderEvalSet(
        "val",
        items,
        options.get("image_size") or 224,
        view.batch_size(batch_size),
        workers or (os.cpu_count() or 1),
        device,
        view_fn=view.make,
        fully_convolutional=view.fully_convolutional,
    )


IMAGENET = DataSet(
    name="imagenet",
    recipe="imagenet",
    default_dir="./data/imagenet",
    detect=is_imagenet_layout,
    train_data=_imagenet_train,
    eval_split=_imagenet_eval,
    inference_view=lambda x, size, recipe: center_view(x, size)[0],  # the "single" test view
    classes=imagenet_classes,
    where="DIR/train/<wnid>/*.JPEG and DIR/val/<wnid>/*.JPEG (not downloadable: see image-net.org)",
)


# ---------------------------------------------------------------- any folder of images
def _folder_decide(d) -> dict:
    """Small images: the CIFAR recipe at their size; larger: the ImageNet recipe. A run
    of DEFAULT_EPOCHS epochs (the paper's 64k or 600k iterations are for its data sets),
    in batches no larger than the training images."""
    root = Path(d.data_dir).expanduser()
    size = small_image_size(root)
    out = {"recipe": "cifar", "image_size": size} if size else {"recipe": "imagenet"}
    splits = folder_splits(root, d.val_split, d.holdout)
    return {**out, "epochs": DEFAULT_EPOCHS, "train_images": len(splits.train)}


def _folder_train(d, *, recipe: str, eval_batch_size: int, **common) -> TrainData:
    root = Path(d.data_dir).expanduser()
    splits = folder_splits(root, d.val_split, d.holdout)
    if get_recipe(recipe).photos:
        return ImageNetData(
            root,
            image_size=d.image_size,
            normalize=d.normalize,
            augment=d.augment,
            lighting=d.lighting,
            eval_batch_size=eval_batch_size,
            workers=d.workers,
            skip_bad_images=d.skip_bad_images,
            splits=(splits.train, splits.val, splits.classes, describe(root, splits, None, d.image_size)),
            **common,
        )
    arrays = small_arrays(root, splits, d.image_size, d.skip_bad_images)
    data = DeviceData(
        arrays,
        normalize=d.normalize,
        augment=d.augment,
        pad_fill=d.pad_fill,
        eval_batch_size=eval_batch_size,
        test_name="val",
        **common,
    )
    data.items = splits.train  # the training list by name: its fingerprint, as eval computes it
    return data


def _folder_eval(
    data_dir: str, options: dict, classes, *, view, recipe: str, batch_size: int, workers: int, device
):
    """The val split (val/ or the same hold-out as training), in the run's pipeline."""
    root = Path(data_dir).expanduser()
    options = legacy_options(options)
    splits = folder_splits(root, options.get("val_split"), options["holdout"])
    trained_on, now = options.get("trained_on"), list_fingerprint(splits.classes, splits.train)
    if trained_on and trained_on != now:  # issue 32: say so, the numbers may not mean the same
        print(
            f"reslearn: note: the training images in {str(root)!r} changed since the net was trained "
            f"(fingerprint {trained_on} then, {now} now): the held-out split may not be the one "
            f"it was tested on while training",
            file=sys.stderr,
        )
    if list(splits.classes) != list(classes):
        raise ValueError(f"the classes of {str(root)!r} {list(splits.classes)[:5]}... are not the net's")
    size = options["image_size"]
    if not get_recipe(recipe).photos:
        if view.name != "single":
            raise ValueError(
                f"--views {view.name}: a net trained on small images is tested on the single view"
            )
        x, y = decode_small(splits.val, size, options.get("skip_bad_images", False))
        return TensorEvalSet("val", x.to(device), y.to(device), batch_size, source=f"folder:{root}")
    vs = view.batch_size(batch_size)
    return ImageFolderEvalSet(
        "val",
        splits.val,
        size,
        vs,
        workers or (os.cpu_count() or 1),
        device,
        view_fn=view.make,
        fully_convolutional=view.fully_convolutional,
    )


def looks_like_imagenet(root: Path) -> bool:
    """train/ and val/ of photos in class folders named by wnid (n01440764, ...): ImageNet or
    a subset of it (Imagenette), which the paper's ImageNet recipe trains as it is."""
    if not is_imagenet_layout(root):
        return False
    names = [d.name for d in (root / "train").iterdir() if d.is_dir() and not d.name.startswith(".")]
    return bool(names) and all(re.fullmatch(r"n\d{8}", n) for n in names) and small_image_size(root) is None


FOLDER = DataSet(
    name="folder",
    recipe="imagenet",
    default_dir="./data/images",
    # Any train/ (with or without val/, no test/) that is not ImageNet-like.
    detect=lambda root: (
        (root / "train").is_dir() and not (root / "test").is_dir() and not looks_like_imagenet(root)
    ),
    train_data=_folder_train,
    eval_split=_folder_eval,
    inference_view=lambda x, size, recipe: (
        center_view(x, size)[0] if get_recipe(recipe).photos else resize_to(x, size)
    ),
    where="DIR/train/<class>/<images> and optionally DIR/val/<class>/<images>",
    decide=_folder_decide,
)


# ---------------------------------------------------------------- the registry
# register_dataset(entry): ``data.dataset NAME`` then trains, evaluates and predicts with it,
# and ``auto`` tries its ``detect`` before the built-in ones.
DATASETS: Registry[DataSet] = Registry("data set", CIFAR10, IMAGENET, CIFAR100, FOLDER, reserved=("auto",))
register_dataset, get_dataset = DATASETS.add, DATASETS.lookup


def detect_dataset(data_dir: str | os.PathLike) -> DataSet:
    """``data.dataset auto``: the last-registered entry whose ``detect`` claims the folder
    (CIFAR-10, downloaded when absent, claims any folder the others do not)."""
    root = Path(data_dir).expanduser()
    return next(d for d in reversed(DATASETS.values()) if d.detect(root))


def dataset_of(config: dict) -> DataSet:
    """The entry a saved run config trained on. Configs from before the registry name no
    data set: theirs follows from the recipe."""
    name = (config.get("data") or {}).get("dataset") or "auto"
    if name == "auto":
        name = "imagenet" if (config.get("optim") or {}).get("recipe") == "imagenet" else "cifar10"
    if name not in DATASETS:
        raise ValueError(
            f"this net was trained on the data set {name!r}, which is not registered here: "
            f"register it (reslearn.data.register_dataset) before using the net"
        )
    return DATASETS[name]
