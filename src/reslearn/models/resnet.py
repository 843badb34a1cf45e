"""The two network families of the paper: ImageNet (Table 1) and CIFAR (Section 4.2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from .blocks import BasicBlock, Bottleneck
from .shortcuts import SHORTCUT_OPTIONS

Variant = Literal["v1", "v1.5"]
VARIANTS = ("v1", "v1.5")
# He et al. 2015 ("Delving deep", the paper's [13]) derives the std sqrt(2/n) from either
# the fan-in (forward signal) or the fan-out (backward signal) and allows both.
INIT_MODES = ("fan_out", "fan_in")


class ResNet(nn.Module):
    """A residual (or plain) network: stem, stages of blocks, global pool, fc.

    Module names follow torchvision (``conv1``, ``bn1``, ``layer1``..``layer4``, ``fc``).

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: blocks per stage, e.g. (3, 4, 6, 3) for ResNet-50 or (3, 3, 3) for ResNet-20.
        widths: base width w of each stage (output channels are w * block.expansion).
        stem: ``"imagenet"`` (7x7/2 conv, 64, + 3x3/2 max pool) or ``"cifar"``
            (3x3 conv, ``widths[0]`` filters, no pool).
        num_classes: size of the fc layer.
        residual: False builds the plain counterpart (no shortcut at all).
        shortcut: "A", "B" or "C" (Table 3); ignored when ``residual`` is False.
        variant: "v1" (paper: stride on a bottleneck's first 1x1) or "v1.5" (on the 3x3).
        zero_init_residual: start each residual branch's last BN at gamma=0 (not in the
            paper, which uses gamma=1; Goyal et al. 2017). Default False, as the paper.
        init_mode: "fan_out" (default, as torchvision) or "fan_in" for the He-normal std
            sqrt(2 / fan) of every convolution; the paper cites [13], which allows either.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        widths: Sequence[int],
        *,
        stem: Literal["imagenet", "cifar"],
        num_classes: int,
        residual: bool = True,
        shortcut: str = "B",
        variant: Variant = "v1",
        zero_init_residual: bool = False,
        init_mode: str = "fan_out",
    ) -> None:
        super().__init__()
        if init_mode not in INIT_MODES:
            raise ValueError(f"init_mode must be one of {INIT_MODES}, got {init_mode!r}")
        if shortcut not in SHORTCUT_OPTIONS:
            raise ValueError(f"shortcut must be one of {SHORTCUT_OPTIONS}, got {shortcut!r}")
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        if len(layers) != len(widths) or not 1 <= len(layers) <= 4:
            raise ValueError(f"layers {list(layers)} and widths {list(widths)} must match")
        if any(n < 1 for n in layers):
            raise ValueError(f"every stage needs at least one block, got layers={list(layers)}")
        if zero_init_residual and not residual:
            raise ValueError("zero_init_residual=True would cut the signal of a plain net")
        self.residual = residual
        self.shortcut = shortcut if residual else None
        self.variant = variant
        self.stem = stem

        in_ch = self._build_stem(stem, widths[0])
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.relu = nn.ReLU(inplace=True)

        self.num_stages = len(layers)
        for i, (n, w) in enumerate(zip(layers, widths)):
            stride = 1 if i == 0 else 2  # conv3_1, conv4_1, conv5_1 down-sample
            # The stride placement exists only in a bottleneck (its 1x1 or its 3x3).
            extra = {"stride_on_3x3": variant == "v1.5"} if block is Bottleneck else {}
            blocks = []
            for j in range(n):
                blocks.append(
                    block(in_ch, w, stride if j == 0 else 1, residual=residual, shortcut=shortcut, **extra)
                )
                in_ch = w * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        for i in range(len(layers), 4):
            # CIFAR nets have 3 stages; explicit no-op stages keep forward() scriptable.
            setattr(self, f"layer{i + 1}", nn.Identity())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        self.num_features = in_ch
        self._init_weights(zero_init_residual, init_mode)

    def _build_stem(self, stem: str, cifar_width: int) -> int:
        """conv1 (and maxpool) of the stem; returns its output channels."""
        if stem == "imagenet":  # Table 1: 7x7/2 conv, 64 filters, 3x3/2 max pool
            self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            return 64
        if stem == "cifar":  # Section 4.2: one 3x3 conv, no pool
            self.conv1 = nn.Conv2d(3, cifar_width, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
            return cifar_width
        raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")

    def _init_weights(self, zero_init_residual: bool, init_mode: str) -> None:
        # He et al. 2015 (MSRA) init for convolutions, as the paper; BN starts at identity.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode=init_mode, nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn().weight)

    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def freeze_to(self, stage: str) -> list[str]:
        """Fine-tuning (not in the paper): freeze the stem ("conv1": conv1 and bn1) and every
        stage up to ``stage`` ("layer1" ...): no gradients, and their BatchNorm layers keep
        their statistics (eval mode, also while the net trains). "none": nothing. Returns
        the frozen modules' names."""
        names = ["conv1", "bn1"] + [f"layer{i + 1}" for i in range(self.num_stages)]
        if stage == "none":
            return []
        if stage not in ("conv1", *names[2:]):
            raise ValueError(
                f"--freeze-to {stage!r}: this net's stages are conv1, layer1 ... "
                f"layer{self.num_stages} (or none)"
            )
        frozen = names[: names.index(stage) + 1 + (stage == "conv1")]
        for name in frozen:
            for p in getattr(self, name).parameters():
                p.requires_grad_(False)
        self._frozen = tuple(frozen)
        return list(self.train(self.training)._frozen)

    def train(self, mode: bool = True) -> ResNet:
        super().train(mode)
        for name in getattr(self, "_frozen", ()):
            getattr(self, name).eval()  # frozen BatchNorm keeps its running statistics
        return self

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, C, h, w) before global pooling."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))  # (N, num_classes) logits
