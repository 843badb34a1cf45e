"""The named networks of the paper, each a registered constructor.

ImageNet (Table 1; 1000 classes, 224x224, default shortcut B): resnet18..152, plain18..152.
CIFAR-10 (Section 4.2; 10 classes, 32x32, always shortcut A in the paper): resnet20..1202,
plain20..110, plus ``cifar_resnet{D}`` / ``cifar_plain{D}`` aliases and any 6n+2 depth.
"""

from __future__ import annotations

from torch import nn

from .blocks import BasicBlock, Bottleneck
from .registry import register_model
from .resnet import ResNet

IMAGENET_SPECS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, ...]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}
CIFAR_DEPTHS = (20, 32, 44, 56, 110, 1202)
CIFAR_PLAIN_DEPTHS = (20, 32, 44, 56, 110)


def imagenet_net(
    depth: int,
    *,
    residual: bool = True,
    num_classes: int = 1000,
    shortcut: str | None = None,
    variant: str = "v1",
    zero_init_residual: bool = False,
) -> ResNet:
    """ImageNet ResNet/plain net of Table 1. ``shortcut`` defaults to "B" (the paper's main)."""
    if depth not in IMAGENET_SPECS:
        raise ValueError(f"ImageNet depth must be one of {sorted(IMAGENET_SPECS)}, got {depth}")
    if not residual and shortcut is not None:
        raise ValueError(f"plain{depth} has no shortcuts; got shortcut={shortcut!r}")
    block, layers = IMAGENET_SPECS[depth]
    return ResNet(
        block,
        layers,
        (64, 128, 256, 512),
        stem="imagenet",
        num_classes=num_classes,
        residual=residual,
        shortcut=shortcut or "B",
        variant=variant,
        zero_init_residual=zero_init_residual,
    )


def cifar_net(
    depth: int,
    *,
    residual: bool = True,
    num_classes: int = 10,
    shortcut: str | None = None,
    variant: str = "v1",
    zero_init_residual: bool = False,
) -> ResNet:
    """CIFAR net of Section 4.2: 6n+2 layers, widths 16/32/64. ``shortcut`` defaults to "A"."""
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"CIFAR depth must be 6n+2 with n >= 1, got {depth!r}")
    if not residual and shortcut is not None:
        raise ValueError(f"plain{depth} has no shortcuts; got shortcut={shortcut!r}")
    n = (depth - 2) // 6
    return ResNet(
        BasicBlock,
        (n, n, n),
        (16, 32, 64),
        stem="cifar",
        num_classes=num_classes,
        residual=residual,
        shortcut=shortcut or "A",
        variant=variant,
        zero_init_residual=zero_init_residual,
    )


def _register_imagenet(depth: int, residual: bool) -> None:
    name = f"{'resnet' if residual else 'plain'}{depth}"

    @register_model(name)
    def _fn(**kw) -> nn.Module:
        return imagenet_net(depth, residual=residual, **kw)


def _register_cifar(depth: int, residual: bool, listed: bool) -> None:
    kind = "resnet" if residual else "plain"

    def _fn(**kw) -> nn.Module:
        return cifar_net(depth, residual=residual, **kw)

    if listed:
        register_model(f"{kind}{depth}")(_fn)
    register_model(f"cifar_{kind}{depth}", listed=False)(_fn)


for _d in IMAGENET_SPECS:
    _register_imagenet(_d, True)
for _d in IMAGENET_SPECS:
    _register_imagenet(_d, False)
for _d in CIFAR_DEPTHS:
    _register_cifar(_d, True, listed=True)
for _d in CIFAR_PLAIN_DEPTHS:
    _register_cifar(_d, False, listed=True)


def is_cifar(model: nn.Module) -> bool:
    return getattr(model, "stem", None) == "cifar"
