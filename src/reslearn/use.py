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
from .files import (
    atomic_write,
    onnx_of_reslearn,
    output_file,
    register_output_kind,
    safetensors_of_reslearn,
    torchscript_archive,
)
from .models import create_model, get_model_spec
from .published import read_trained, trained_file
from .registry import Registry


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
    return view(x, size, recipe)  # positional: a registered data set names its arguments as it likes


def input_size(config: dict) -> int:
    """The side of a net's input: its training crop, else the net's own (32 or 224)."""
    size = (config.get("data") or {}).get("image_size")
    return size or get_model_spec(config["model"]["name"]).input_size[0]


def load(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, Preprocess, list[str]]:
    """(model in eval mode, preprocess, class names) from a reslearn checkpoint, a run
    directory, a safetensors file written by ``reslearn export --format safetensors``, or
    the name of a published net (``reslearn zoo``)."""
    from .evaluate.load import build_model

    ckpt = read_trained(path)
    prep = Normalizer.from_state(ckpt.preprocessing)
    recipe = ckpt.config.get("optim", {}).get("recipe", "cifar")
    view = functools.partial(_view, dataset_of(ckpt.config).inference_view, recipe=recipe)
    pre = Preprocess(view, input_size(ckpt.config), prep)
    return build_model(ckpt).to(device).eval(), pre, list(ckpt.classes)


# ---------------------------------------------------------------- export
@dataclass(frozen=True)
class ExportFormat:
    """One entry of :data:`EXPORT_FORMATS`: how a trained net is written in that format.
    ``write(ckpt, model, example) -> bytes``: the file's bytes (``example``: one input
    batch, (1, 3, S, S)); ``same_kind(path)``: whether an existing file is one this format
    wrote (what ``--overwrite`` may replace: reslearn.files.output_file)."""

    name: str
    write: Callable[[Checkpoint, nn.Module, torch.Tensor], bytes]
    same_kind: Callable[[Path], bool]
    what: str  # in words, for the message refusing another file


EXPORT_FORMATS: Registry[ExportFormat] = Registry("export format")


def register_export_format(fmt: ExportFormat) -> ExportFormat:
    """Add a format to ``reslearn export`` (its --format choices) and to ``export()``."""
    register_output_kind(fmt.name, fmt.what, fmt.same_kind)
    return EXPORT_FORMATS.add(fmt)


def _torchscript_bytes(ckpt: Checkpoint, model: nn.Module, example: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buf)
    return buf.getvalue()


def _onnx_bytes(ckpt: Checkpoint, model: nn.Module, example: torch.Tensor) -> bytes:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ValueError("ONNX export needs onnx: pip install 'reslearn[export]'") from None
    buf = io.BytesIO()
    torch.onnx.export(
        model,
        (example,),
        buf,
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
        opset_version=17,
    )
    return buf.getvalue()


def export(path: str | Path, fmt: str, out: str | Path, overwrite: bool = False) -> Path:
    """``reslearn export``: one of :data:`EXPORT_FORMATS` (onnx with a dynamic batch,
    torchscript, safetensors with the metadata ``load`` needs). ``out`` follows
    reslearn.files.output_file: never over a checkpoint or the input, over a file of the
    same kind only with ``overwrite``. The bytes are made in memory, then written atomically:
    an interrupted export leaves no half file, and the file gets the usual mode."""
    from .evaluate.load import build_model

    write = EXPORT_FORMATS.lookup(fmt).write
    src = trained_file(path)  # resolved (and a published file's sha256 checked) once
    out = output_file(out, kind=fmt, overwrite=overwrite, reading=[src], log=print)
    ckpt = read_trained(src)
    model = build_model(ckpt).eval()
    x = torch.zeros(1, 3, input_size(ckpt.config), input_size(ckpt.config))
    data = write(ckpt, model, x)
    atomic_write(out, lambda f: f.write(data))
    return out


def _safetensors_bytes(ckpt: Checkpoint, model: nn.Module, example: torch.Tensor | None = None) -> bytes:
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


register_export_format(ExportFormat("onnx", _onnx_bytes, onnx_of_reslearn, "an ONNX export of reslearn"))
register_export_format(
    ExportFormat("torchscript", _torchscript_bytes, torchscript_archive, "a TorchScript archive")
)
register_export_format(
    ExportFormat(
        "safetensors", _safetensors_bytes, safetensors_of_reslearn, "a safetensors export of reslearn"
    )
)


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
