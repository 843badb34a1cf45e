"""Residual and plain building blocks (paper Figure 2 left / Figure 5).

Attribute names follow torchvision (``conv1``, ``bn1``, ..., ``downsample``) so that
option-B ImageNet nets load torchvision state dicts with ``strict=True``.
A block with ``residual=False`` is the plain counterpart: the same layers, no shortcut.
"""

from __future__ import annotations

import torch
from torch import nn

from .shortcuts import make_shortcut


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class _Block(nn.Module):
    def add_shortcut(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """relu(F(x) + shortcut(x)), Eq. (1)/(2); a plain block: relu(F(x))."""
        if self.residual:
            identity = x
            if self.downsample is not None:
                identity = self.downsample(x)
            out = out + identity
        return self.relu(out)


class BasicBlock(_Block):
    """[3x3, w; 3x3, w] (ResNet-18/34 and every CIFAR net)."""

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        width: int,
        stride: int = 1,
        *,
        residual: bool = True,
        shortcut: str = "B",
    ) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.residual = residual
        self.conv1 = conv3x3(in_channels, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = make_shortcut(shortcut, in_channels, out_channels, stride) if residual else None

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.add_shortcut(x, self.bn2(self.conv2(out)))


class Bottleneck(_Block):
    """[1x1, w; 3x3, w; 1x1, 4w] (ResNet-50/101/152).

    The paper's (Caffe) models put the stride of a down-sampling block on the first 1x1
    ("v1", the default). ``stride_on_3x3=True`` moves it to the 3x3 ("v1.5", as
    torchvision does), which costs more multiply-adds (ResNet-50: 4.09e9 vs 3.86e9).
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        width: int,
        stride: int = 1,
        *,
        residual: bool = True,
        shortcut: str = "B",
        stride_on_3x3: bool = False,
    ) -> None:
        super().__init__()
        out_channels = width * self.expansion
        s1, s3 = (1, stride) if stride_on_3x3 else (stride, 1)
        self.residual = residual
        self.conv1 = conv1x1(in_channels, width, s1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, s3)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = make_shortcut(shortcut, in_channels, out_channels, stride) if residual else None

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.add_shortcut(x, self.bn3(self.conv3(out)))
