"""Shortcut connections of the paper (Section 3.3, Table 3).

* option A: identity where shapes match; where they grow, a parameter-free shortcut
  (stride-2 subsampling plus zero channels) -- :class:`ZeroPadShortcut`.
* option B: identity where shapes match; a projection (1x1 conv + BN) where they grow.
* option C: a projection on every block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SHORTCUT_OPTIONS = ("A", "B", "C")


class ZeroPadShortcut(nn.Module):
    """Option A: subsample spatially by ``stride`` and append zero channels.

    A real module (not a lambda) so that models pickle, script and export. It handles
    any growth of width, including the stride-1 64 -> 256 of bottleneck stage 1.
    Shapes: (N, in_channels, H, W) -> (N, out_channels, ceil(H/stride), ceil(W/stride)).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(
                f"option A can only add channels, got in_channels={in_channels} > out_channels={out_channels}"
            )
        if stride not in (1, 2):
            raise ValueError(f"option A supports stride 1 or 2, got stride={stride}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        extra = self.out_channels - self.in_channels
        if extra:
            # F.pad's last pair is the channel dim here: (W_l, W_r, H_t, H_b, C_front, C_back).
            x = F.pad(x, (0, 0, 0, 0, 0, extra))
        return x

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


def projection(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """Options B/C: 1x1 conv + BN. Named like torchvision's ``downsample`` (0: conv, 1: bn)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


def make_shortcut(option: str, in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    """Return the shortcut module for one block, or ``None`` for the identity."""
    if option not in SHORTCUT_OPTIONS:
        raise ValueError(f"shortcut must be one of {SHORTCUT_OPTIONS}, got {option!r}")
    grows = stride != 1 or in_channels != out_channels
    if option == "C" or (option == "B" and grows):
        return projection(in_channels, out_channels, stride)
    if grows:  # option A
        return ZeroPadShortcut(in_channels, out_channels, stride)
    return None
