"""A trained model for inference, and the evaluation data its checkpoint was trained on."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..checkpoint import Checkpoint, CheckpointError, load_checkpoint
from ..data import Normalizer, load_cifar10
from ..data.cifar import CifarArrays
from ..models import create_model


def build_model(ckpt: Checkpoint) -> nn.Module:
    """The checkpoint's network with its weights (strict: every key must match)."""
    opts = {k: v for k, v in ckpt.model_options.items() if v is not None}
    model = create_model(ckpt.model_name, **opts)
    missing, unexpected = model.load_state_dict(ckpt.model, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"the weights do not fit {ckpt.model_name}: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )
    return model


def load_for_inference(path: str | Path, device: torch.device | None = None):
    """(model in eval mode, normalizer, Checkpoint) from a checkpoint file or run dir."""
    ckpt = load_checkpoint(path)
    device = device or torch.device("cpu")
    model = build_model(ckpt)
    normalizer = Normalizer(ckpt.preprocessing["mean"], ckpt.preprocessing["std"])
    return model.to(device).eval(), normalizer.to(device), ckpt


def checkpoint_data(ckpt: Checkpoint, data_dir: str | None = None) -> CifarArrays:
    """The data set a checkpoint was trained on (or ``data_dir``), checked against the
    model's number of classes, for evaluation and layer responses."""
    cfg = ckpt.config["data"]
    where = data_dir or cfg["data_dir"]
    data = load_cifar10(where, download=cfg["download"] if data_dir is None else False)
    n = ckpt.model_options["num_classes"]
    if len(data.classes) != n:
        raise ValueError(f"{where!r} has {len(data.classes)} classes, the model {n}")
    return data


def evaluate_checkpoint(
    path: str | Path,
    *,
    data_dir: str | None = None,
    views: str = "single",
    class_index: str | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    workers: int = 0,
) -> dict:
    """``reslearn eval``: a checkpoint's top-1/top-5 error with the paper's test protocol
    for its data: CIFAR, the single original view of the test split; ImageNet, the val/
    split with ``views`` single (256, centre 224), 10crop (Table 3) or multiscale
    (Table 4, fully convolutional)."""
    from ..data.device import TensorEvalSet
    from ..speed import SpeedSettings, select_device
    from .evaluate import eval_batch_size, evaluate
    from .views import fully_convolutional_logits

    dev = select_device(device)
    model, normalizer, ckpt = load_for_inference(path, dev)
    speed = SpeedSettings(channels_last=True)
    recipe = ckpt.config["optim"].get("recipe", "cifar")
    out = {"model": ckpt.model_name, "iteration": ckpt.iteration, "views": views}
    if recipe != "imagenet":
        if views != "single":
            raise ValueError(
                f"--views {views}: CIFAR nets are tested on the single original view (Section 4.2)"
            )
        data = checkpoint_data(ckpt, data_dir)
        bs = eval_batch_size(recipe, batch_size)
        split = TensorEvalSet("test", data.test_x.to(dev), data.test_y.to(dev), bs)
        res = evaluate(model, split, normalizer, speed=speed, device=dev)
        return {**out, **res, "split": "test", "data": data.source}
    bs = eval_batch_size(recipe, batch_size)
    split = imagenet_eval_split(ckpt, data_dir, views, class_index, bs, workers, dev)
    forward = fully_convolutional_logits if split.fully_convolutional else None
    res = evaluate(model, split, normalizer, speed=speed, device=dev, forward=forward)
    return {
        **out,
        **res,
        "split": "val",
        "data": f"imagefolder:{data_dir or ckpt.config['data']['data_dir']}",
    }


def imagenet_eval_split(ckpt: Checkpoint, data_dir, views, class_index, batch_size, workers, dev):
    """The val/ split of ImageNet-layout data, labelled as the checkpoint's classes."""
    import os

    from ..data.imagenet import ImageFolderEvalSet, list_split, read_class_index
    from .views import get_test_view

    cfg = ckpt.config["data"]
    root = Path(data_dir or cfg["data_dir"]).expanduser()
    if not (root / "val").is_dir():
        raise ValueError(f"no val/ split in {str(root)!r} (expected {root}/val/<wnid>/*.JPEG)")
    index_file = class_index or cfg.get("class_index")
    if index_file is None and len(ckpt.classes) == 1000:
        from ..data.imagenet import IMAGENET_CLASSES_TSV, imagenet_classes

        if tuple(ckpt.classes) == imagenet_classes():  # an ImageNet-1k net (e.g. torchvision's)
            index_file = IMAGENET_CLASSES_TSV
    index = read_class_index(index_file) if index_file else None
    items, classes = list_split(root / "val", index)
    n = ckpt.model_options["num_classes"]
    if len(classes) != n:
        raise ValueError(f"{str(root / 'val')!r} has {len(classes)} classes, the model {n}")
    if index is None and list(classes) != list(ckpt.classes):
        raise ValueError(f"the val/ folders {list(classes)[:5]}... are not the checkpoint's classes")
    size = cfg.get("image_size") or 224
    view = get_test_view(views)
    return ImageFolderEvalSet(
        "val",
        items,
        size,
        view.batch_size(batch_size),
        workers or (os.cpu_count() or 1),
        dev,
        view_fn=view.make,
        fully_convolutional=view.fully_convolutional,
    )
