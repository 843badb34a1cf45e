"""Fine-tuning (not in the paper): start a run from trained weights.

``--init SOURCE`` reads a run directory, a reslearn checkpoint, a ``.safetensors`` export,
a published net by name (``reslearn zoo``; its sha256 checked) or a torchvision ``.pth``
(all read safely: tensors and plain values only). The layers whose names and shapes match
load; the others keep their fresh initialisation and are named
(the classifier, when the classes differ: the "new head", which ``--head-lr`` trains at
its own lr). The source's normalisation stays with the net where it applies (same
shape: torchvision's per-channel mean/std, or a reslearn net's mean image at the same
size), so the features see the inputs they were trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import read_torchvision_weights, torchvision_arch
from ..data.augment import TORCHVISION_MEAN, TORCHVISION_STD
from ..data.imagenet import imagenet_classes
from ..models import ModelSpec
from ..published import find as find_published
from ..published import read_trained


@dataclass
class InitWeights:
    """Weights to start from: the state dict, its normalisation, what they are."""

    source: str
    kind: str  # "reslearn" or "torchvision"
    model_name: str | None  # the architecture the weights are of (None: unknown)
    state: dict[str, torch.Tensor]
    preprocessing: dict[str, torch.Tensor]
    variant: str | None = None
    classes: list[str] | None = None  # the source's output classes
    shortcut: str | None = None  # the source's shortcut option (None: its net's default)


def read_init(source: str, spec: ModelSpec) -> InitWeights:
    """The weights at ``source`` for a ``spec`` net; an architecture that does not match is
    an error naming both."""
    p = Path(source).expanduser()
    if not p.exists() and not find_published(source):
        raise ValueError(f"--init {source!r}: no such file, run directory or published net")
    if p.suffix == ".pth":
        state = {k.removeprefix("module."): v for k, v in read_torchvision_weights(p).items()}  # DDP's keys
        tv = {
            "mean": torch.tensor(TORCHVISION_MEAN)[:, None, None],
            "std": torch.tensor(TORCHVISION_STD)[:, None, None],
        }
        arch = torchvision_arch(state)
        init = InitWeights(str(p), "torchvision", arch, state, tv, "v1.5", list(imagenet_classes()))
    else:
        ckpt = read_trained(source)  # a run, checkpoint, export or published net (sha256 checked)
        variant, shortcut = ckpt.config["model"].get("variant"), ckpt.config["model"].get("shortcut")
        init = InitWeights(
            str(p),
            "reslearn",
            ckpt.model_name,
            ckpt.model,
            ckpt.preprocessing,
            variant,
            list(ckpt.classes),
            shortcut,
        )
    init.state = {k.removeprefix("module."): v for k, v in init.state.items()}  # a DDP model's keys
    if init.model_name != spec.name:
        what = f"{init.model_name}'s weights" if init.model_name else "no ResNet's weights we know"
        raise ValueError(
            f"--init {source!r} holds {what}, not {spec.name}'s: use --model {init.model_name}"
            if init.model_name
            else f"--init {source!r} holds {what}, not {spec.name}'s"
        )
    return init


def check_shape(init: InitWeights, spec: ModelSpec, shortcut: str | None, variant: str | None) -> None:
    """The source's shortcut option and stride variant are the net's (as its depth is):
    otherwise the blocks' tensors would load only in part. A torchvision source is v1.5/B."""
    if init.kind == "torchvision":
        theirs_sc, theirs_var = "B", "v1.5"
    else:
        theirs_sc, theirs_var = init.shortcut or spec.default_shortcut, init.variant or "v1"
    ours_sc, ours_var = shortcut or spec.default_shortcut, variant or "v1"
    if spec.residual and theirs_sc != ours_sc:
        raise ValueError(
            f"--init {init.source!r} is a {spec.name} with shortcut {theirs_sc}, this net has "
            f"{ours_sc}: add --shortcut {theirs_sc}"
        )
    if spec.block == "bottleneck" and theirs_var != ours_var:
        raise ValueError(
            f"--init {init.source!r} is a {theirs_var} net (stride placement): add --variant {theirs_var}"
        )


def apply_init(model: nn.Module, init: InitWeights, classes: list[str], partial: bool = False) -> dict:
    """Load the matching tensors of ``init`` into ``model``, whose outputs are ``classes``.
    The classifier (fc) loads only when the source's classes are the same: another set
    of classes, even as many, gets a new classifier. Returns what happened: {"source",
    "kind", "loaded": count, "replaced": names kept fresh (new classifier, shape differs or
    absent from the source), "not_loaded": source tensors the net has no place for}."""
    own = model.state_dict()
    same = init.classes is None or list(init.classes) == list(classes)
    fits = {
        k: v
        for k, v in init.state.items()
        if k in own and own[k].shape == v.shape and (same or not k.startswith("fc."))
    }
    if not fits:
        raise ValueError(f"--init {init.source!r} has no tensor that fits this net: nothing would load")
    fresh = [
        k for k in own if k not in fits and not k.startswith("fc.") and not k.endswith("num_batches_tracked")
    ]
    if fresh and not partial:
        layers = sorted({k.rsplit(".", 1)[0] for k in fresh})
        raise ValueError(
            f"--init {init.source!r} leaves {len(layers)} layer(s) besides the classifier fresh: "
            f"{', '.join(layers[:8])}{', ...' if len(layers) > 8 else ''}; "
            f"add --init-partial to train them from scratch"
        )
    model.load_state_dict(fits, strict=False)
    return {
        "source": init.source,
        "kind": init.kind,
        "loaded": len(fits),
        "replaced": sorted(k for k in own if k not in fits),
        "not_loaded": sorted(k for k in init.state if k not in fits),
    }


def new_parameters(model: nn.Module, report: dict) -> set[str]:
    """Names of the trainable parameters ``--init`` did not load (the new head)."""
    return {n for n, p in model.named_parameters() if n in set(report["replaced"]) and p.requires_grad}


def describe(report: dict, frozen: list[str]) -> list[str]:
    """The log lines of a fine-tuning start: what loaded, what was replaced, what froze."""
    lines = [f"init: {report['loaded']} tensors from {report['source']} ({report['kind']})"]
    if report["replaced"]:
        lines.append(f"init: replaced (new, freshly initialised): {', '.join(report['replaced'])}")
    if report["not_loaded"]:
        why = "the classes differ, or no place in this net"
        lines.append(f"init: not loaded ({why}): {', '.join(report['not_loaded'])}")
    if frozen:
        lines.append(f"init: frozen (weights and BatchNorm statistics): {', '.join(frozen)}")
    return lines
