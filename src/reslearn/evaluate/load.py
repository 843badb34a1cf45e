"""A trained model for inference, and the evaluation data its checkpoint was trained on."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..checkpoint import Checkpoint, CheckpointError
from ..data import Normalizer
from ..data.datasets import dataset_of
from ..models import create_model
from ..published import read_trained
from ..speed import SpeedSettings, select_device
from .evaluate import eval_batch_size, evaluate
from .views import fully_convolutional_logits, get_test_view


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


def load_with_normalizer(path: str | Path, device: torch.device | None = None):
    """(model in eval mode, normalizer, Checkpoint) from a checkpoint file or run dir, a
    safetensors export or a published net's name: the normaliser alone (uint8 batches ->
    input), for evaluation code that makes its own views. ``reslearn.load`` gives (model,
    preprocess, classes) with the whole inference view."""
    ckpt = read_trained(path)
    device = device or torch.device("cpu")
    model = build_model(ckpt)
    normalizer = Normalizer.from_state(ckpt.preprocessing)
    return model.to(device).eval(), normalizer.to(device), ckpt


def checkpoint_split(
    ckpt: Checkpoint,
    data_dir: str | None = None,
    views: str = "single",
    class_index: str | None = None,
    batch_size: int | None = None,
    workers: int = 0,
    device: torch.device = torch.device("cpu"),
):
    """The split a checkpoint's net is tested on (its data set's, at ``data_dir`` when
    given), from the data set's registry entry, with the test view ``views``."""
    options = dict(ckpt.config.get("data") or {})
    if class_index is not None:
        options["class_index"] = class_index
    options["trained_on"] = (ckpt.provenance or {}).get("data_fingerprint")  # a data set may check it
    recipe = (ckpt.config.get("optim") or {}).get("recipe", "cifar")
    return dataset_of(ckpt.config).eval_split(
        data_dir or options["data_dir"],
        options,
        ckpt.classes,
        view=get_test_view(views),
        recipe=recipe,
        batch_size=eval_batch_size(recipe, batch_size),
        workers=workers,
        device=device,
    )


def evaluate_checkpoint(
    path: str | Path,
    *,
    data_dir: str | None = None,
    views: str = "single",
    class_index: str | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    workers: int = 0,
    per_class: bool = False,
) -> dict:
    """``reslearn eval``: a checkpoint's top-1/top-5 error with the paper's test protocol
    for its data: CIFAR, the single original view of the test split; ImageNet, the val/
    split with ``views`` single (256, centre 224), 10crop (Table 3) or multiscale
    (Table 4, fully convolutional). ``per_class``: also "classes" and "confusion" (true
    class by predicted class counts; reslearn.evaluate.per_class)."""
    dev = select_device(device)
    model, normalizer, ckpt = load_with_normalizer(path, dev)
    split = checkpoint_split(ckpt, data_dir, views, class_index, batch_size, workers, dev)
    forward = fully_convolutional_logits if split.fully_convolutional else None
    speed = SpeedSettings(channels_last=True)
    res = evaluate(model, split, normalizer, speed=speed, device=dev, forward=forward, confusion=per_class)
    source = getattr(split, "source", "") or f"imagefolder:{data_dir or ckpt.config['data']['data_dir']}"
    # An export written before it stored the iteration: unknown (None), not 0.
    it = ckpt.iteration if "iteration" in ckpt.train_state else None
    out = {"model": ckpt.model_name, "iteration": it, "views": views}
    if per_class:
        out["classes"] = list(ckpt.classes)
    return {**out, **res, "split": split.name, "data": source}
