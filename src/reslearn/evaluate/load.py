"""A trained model for inference, and the evaluation data its checkpoint was trained on."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..data import Normalizer, load_cifar10
from ..data.cifar import CifarArrays
from ..models import create_model
from ..train.checkpoint import Checkpoint, CheckpointError, load_checkpoint


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
