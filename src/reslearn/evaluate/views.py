"""Test-time views: pure functions from an image batch to the list of views scored.

A view function takes (N, 3, H, W) images (any dtype, any device) and returns a list of
batches, one per view, each (N, 3, h, w); :func:`reslearn.evaluate.evaluate` averages the
softmax scores over them. The ImageNet issue adds the paper's 10-crop (Table 3) and
multi-scale fully-convolutional (Table 4) views here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

ViewFn = Callable[[torch.Tensor], list[torch.Tensor]]


def single_view(x: torch.Tensor) -> list[torch.Tensor]:
    """The image as it is (CIFAR: the original 32x32 image, paper Section 4.2)."""
    return [x]


def flip_views(x: torch.Tensor) -> list[torch.Tensor]:
    """The image and its horizontal flip."""
    return [x, x.flip(-1)]


VIEWS: dict[str, ViewFn] = {"single": single_view, "flip": flip_views}


def get_view(name: str) -> ViewFn:
    if name not in VIEWS:
        raise ValueError(f"unknown view {name!r}; one of {sorted(VIEWS)}")
    return VIEWS[name]
