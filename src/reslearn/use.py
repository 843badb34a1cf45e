"""Using a trained net: load it, preprocess images as evaluation does, predict, export.

``reslearn.load(PATH) -> (model, preprocess, classes)`` reads a reslearn checkpoint, a
run directory or an exported safetensors file (no pickle at all).
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .checkpoint import (
    SAFETENSORS_FORMAT,
    Checkpoint,
    CheckpointError,
    read_torchvision_weights,
    torchvision_arch,
)
from .data.augment import TORCHVISION_MEAN, TORCHVISION_STD, Normalizer
from .data.datasets import dataset_of, get_dataset
from .files import atomic_write, output_file
from .models import create_model, get_model_spec
from .published import read_trained, trained_file


@dataclass
class Preprocess:
    """PIL image or uint8 tensor (3, H, W) -> the model's input (3, S, S), as evaluation
    does: the data set's inference view (CIFAR: the image at S x S, resized if it is not;
    ImageNet: shorter side 256/224 x S, the centre S x S crop; reslearn.data.datasets),
    then the stored normalisation. Stack outputs for a batch."""

    view: Callable[[torch.Tensor, int], torch.Tensor]
    size: int
    normalizer: Normalizer

    def __call__(self, img) -> torch.Tensor:
        return self.normalizer(self.view(to_uint8_tensor(img), self.size)[None])[0]


def to_uint8_tensor(img) -> torch.Tensor:
    if isinstance(img, torch.Tensor):
        if img.dtype != torch.uint8 or img.ndim != 3 or img.shape[0] not in (1, 3):
            raise ValueError(f"expected a uint8 image tensor (3, H, W), got {img.dtype} {tuple(img.shape)}")
        return img.expand(3, -1, -1) if img.shape[0] == 1 else img
    import numpy as np

    a = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(a.transpose(2, 0, 1).copy())


def _view(view, x: torch.Tensor, size: int, recipe: str) -> torch.Tensor:
    return view(x, size, recipe)


def input_size(config: dict) -> int:
    """The side of a net's input: its training crop, else the net's own (32 or 224)."""
    return (config.get("data") or {}).get("image_size") or get_model_spec(config["model"]["name"]).input_size[
        0
    ]


def load(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, Preprocess, list[str]]:
    """(model in eval mode, preprocess, class names) from a reslearn checkpoint, a run
    directory, a safetensors file written by ``reslearn export --format safetensors``, or
    the name of a published net (``reslearn zoo``)."""
    from .evaluate.load import build_model

    ckpt = read_trained(path)
    prep = Normalizer(ckpt.preprocessing["mean"], ckpt.preprocessing["std"])
    recipe = ckpt.config.get("optim", {}).get("recipe", "cifar")
    view = functools.partial(_view, dataset_of(ckpt.config).inference_view, recipe=recipe)
    pre = Preprocess(view, input_size(ckpt.config), prep)
    return build_model(ckpt).to(device).eval(), pre, list(ckpt.classes)


# ---------------------------------------------------------------- export
def export(path: str | Path, fmt: str, out: str | Path, overwrite: bool = False) -> Path:
    """``reslearn export``: onnx (dynamic batch), torchscript, or safetensors (weights and
    the metadata ``load`` needs: spec, options, classes, preprocessing, config). ``out``
    follows reslearn.files.output_file: never over a checkpoint or the input, over another
    existing file only with ``overwrite``."""
    from .evaluate.load import build_model

    if fmt not in ("onnx", "torchscript", "safetensors"):
        raise ValueError(f"unknown export format {fmt!r}; one of onnx, torchscript, safetensors")
    src = trained_file(path)  # resolved (and a published file's sha256 checked) once
    out = output_file(out, kind=fmt, overwrite=overwrite, reading=[src], log=print)
    ckpt = read_trained(src)
    model = build_model(ckpt).eval()
    x = torch.zeros(1, 3, input_size(ckpt.config), input_size(ckpt.config))
    # Each format is serialised in memory, then written atomically: an interrupted export
    # leaves no half file, and the file gets the usual mode (safetensors' own writer made it 0600).
    buf = io.BytesIO()
    if fmt == "torchscript":
        torch.jit.save(torch.jit.script(model), buf)
    elif fmt == "onnx":
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise ValueError("ONNX export needs onnx: pip install 'reslearn[export]'") from None
        torch.onnx.export(
            model,
            (x,),
            buf,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            dynamo=False,
            opset_version=17,
        )
    else:
        buf.write(_safetensors_bytes(ckpt, model))
    atomic_write(out, lambda f: f.write(buf.getbuffer()))
    return out


def _safetensors_bytes(ckpt: Checkpoint, model: nn.Module) -> bytes:
    from safetensors.torch import save

    tensors = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"preprocessing.{k}": v.contiguous() for k, v in ckpt.preprocessing.items()})
    # One metadata entry, not one a field: safetensors keeps the metadata in a hash map whose
    # order changes from process to process, so with several keys two exports of the same run
    # differed in their header (and their sha256). With one, an export is byte-reproducible.
    meta = {"format": SAFETENSORS_FORMAT, "classes": list(ckpt.classes), "config": ckpt.config}
    if "iteration" in ckpt.train_state:  # what `reslearn eval` of the export reports
        meta["iteration"] = ckpt.iteration
    return save(tensors, metadata={"reslearn": json.dumps(meta, sort_keys=True)})


# ---------------------------------------------------------------- torchvision weights
def import_torchvision(weights: str | Path, model: str, out: str | Path, overwrite: bool = False) -> Path:
    """A torchvision ResNet state dict (a .pth file) -> a reslearn checkpoint: v1.5 (stride
    on the 3x3, torchvision's), option B, torchvision's per-channel normalisation, the
    ImageNet-1k class list."""
    from .checkpoint import save_checkpoint
    from .train.config import DataConfig, ModelConfig, OptimConfig, TrainConfig

    spec = get_model_spec(model)
    if spec.family != "imagenet" or not spec.residual:
        raise ValueError(f"torchvision has ImageNet ResNets only (resnet18 ... resnet152), not {model!r}")
    p = Path(weights).expanduser()
    if not p.is_file():
        raise ValueError(f"no weights file at {str(weights)!r}")
    out = output_file(out, kind="checkpoint", overwrite=overwrite, reading=[p], log=print)
    state = read_torchvision_weights(p)
    net = create_model(model, variant="v1.5", shortcut="B")
    want = net.state_dict()
    if set(state) != set(want) or any(state[k].shape != want[k].shape for k in want):
        found = torchvision_arch(state)
        what = f"the weights of torchvision's {found}" if found else "no torchvision ResNet's weights"
        hint = f": use --model {found}" if found else ""
        raise CheckpointError(f"{str(p)!r} holds {what}, not {model}'s{hint}")
    net.load_state_dict(state)
    cfg = TrainConfig(
        ModelConfig(model, shortcut="B", variant="v1.5"),
        DataConfig("./data/imagenet", dataset="imagenet", normalize="channel", image_size=224),
        OptimConfig(recipe="imagenet"),
    )
    ckpt = Checkpoint(
        model=net.state_dict(),
        classes=list(get_dataset("imagenet").classes()),
        preprocessing={
            "mean": torch.tensor(TORCHVISION_MEAN)[:, None, None],
            "std": torch.tensor(TORCHVISION_STD)[:, None, None],
        },
        config=cfg.to_dict(),
        provenance={"imported_from": str(p), "source": "torchvision"},
    )
    save_checkpoint(out, ckpt, keep_previous=False)
    return out
