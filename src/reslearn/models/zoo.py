"""The named networks of the paper, each registered with its :class:`ModelSpec`.

ImageNet (Table 1; 1000 classes, 224x224, default shortcut B): resnet18..152, plain18..152.
CIFAR-10 (Section 4.2; 10 classes, 32x32, shortcut A in the paper): resnet20..1202 and
plain20..110 under the paper's names, and ``cifar_resnet{6n+2}`` / ``cifar_plain{6n+2}``
for every depth 6n+2 (``resnet26`` or ``resnet200`` would read as ImageNet-style names
elsewhere, timm has both, so arbitrary CIFAR depths always carry the ``cifar_`` prefix).
"""

from __future__ import annotations

import re

from .blocks import BasicBlock, Bottleneck
from .registry import ModelSpec, register_hint, register_model, register_pattern
from .resnet import ResNet

IMAGENET_LAYERS: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
CIFAR_DEPTHS = (20, 32, 44, 56, 110, 1202)
CIFAR_PLAIN_DEPTHS = (20, 32, 44, 56, 110)
_BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


def imagenet_spec(depth: int, residual: bool = True) -> ModelSpec:
    if depth not in IMAGENET_LAYERS:
        raise ValueError(f"ImageNet depth must be one of {sorted(IMAGENET_LAYERS)}, got {depth!r}")
    block, layers = IMAGENET_LAYERS[depth]
    return ModelSpec(
        name=f"{'resnet' if residual else 'plain'}{depth}",
        family="imagenet",
        depth=depth,
        residual=residual,
        block=block,
        layers=layers,
        widths=(64, 128, 256, 512),
        input_size=(224, 224),
        num_classes=1000,
        default_shortcut="B" if residual else None,
    )


MAX_CIFAR_DEPTH = 2402
"""Twice the paper's deepest net (1202 layers): deeper is refused before any work (a
99,998-layer net took minutes to build before saying anything)."""


def cifar_spec(depth: int, residual: bool = True, name: str | None = None) -> ModelSpec:
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"a CIFAR net needs depth 6n+2 with n >= 1 (8, 14, 20, 26, 32, ...), got {depth!r}")
    if depth > MAX_CIFAR_DEPTH:
        raise ValueError(
            f"depth {depth} is over reslearn's limit of {MAX_CIFAR_DEPTH} layers for CIFAR nets "
            f"(the paper's deepest has 1202)"
        )
    n = (depth - 2) // 6
    return ModelSpec(
        name=name or f"cifar_{'resnet' if residual else 'plain'}{depth}",
        family="cifar",
        depth=depth,
        residual=residual,
        block="basic",
        layers=(n, n, n),
        widths=(16, 32, 64),
        input_size=(32, 32),
        num_classes=10,
        default_shortcut="A" if residual else None,
    )


def build_resnet(
    spec: ModelSpec,
    *,
    num_classes: int | None = None,
    shortcut: str | None = None,
    variant: str = "v1",
    zero_init_residual: bool = False,
    init_mode: str = "fan_out",
) -> ResNet:
    """Build the net a spec describes. ``shortcut`` None: the paper's (``spec.default_shortcut``)."""
    if not spec.residual and shortcut is not None:
        raise ValueError(f"{spec.name} is a plain net and has no shortcuts; got shortcut={shortcut!r}")
    return ResNet(
        _BLOCKS[spec.block],
        spec.layers,
        spec.widths,
        stem=spec.family,
        num_classes=spec.num_classes if num_classes is None else num_classes,
        residual=spec.residual,
        shortcut=shortcut or spec.default_shortcut or "B",
        variant=variant,
        zero_init_residual=zero_init_residual,
        init_mode=init_mode,
    )


for _d in IMAGENET_LAYERS:
    register_model(imagenet_spec(_d, True), build_resnet)
for _d in IMAGENET_LAYERS:
    register_model(imagenet_spec(_d, False), build_resnet)
for _d in CIFAR_DEPTHS:
    register_model(cifar_spec(_d, True, name=f"resnet{_d}"), build_resnet)
for _d in CIFAR_PLAIN_DEPTHS:
    register_model(cifar_spec(_d, False, name=f"plain{_d}"), build_resnet)


def _resolve_cifar(name: str, m: re.Match) -> ModelSpec:
    return cifar_spec(int(m.group(2)), m.group(1) == "resnet", name=name)


register_pattern(r"cifar_(resnet|plain)(\d+)", _resolve_cifar, build_resnet)


def _cifar_hint(name: str) -> str | None:
    m = re.fullmatch(r"(resnet|plain)(\d+)", name)
    if m is None:
        return None
    depth = int(m.group(2))
    if depth >= 8 and (depth - 2) % 6 == 0:
        return f"A CIFAR net of depth {depth} is cifar_{name}."
    return (
        "CIFAR nets of any depth 6n+2 (8, 14, 20, 26, ...) are cifar_resnet{6n+2} / "
        "cifar_plain{6n+2}; ImageNet depths are 18, 34, 50, 101, 152."
    )


register_hint(_cifar_hint)
