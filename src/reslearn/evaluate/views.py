"""Test-time views: pure functions from an image batch to the list of views scored.

A view function takes (N, 3, H, W) images of one size (any dtype, any device) and returns
a list of batches, one per view; :func:`reslearn.evaluate.evaluate` averages the softmax
scores over them (paper Section 3.4). Sizes are for 224x224 training; ``size`` scales
them for nets trained at another resolution (e.g. 112: resize 128, crop 112).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..data.augment import resize_shorter_reference as resize_shorter

ViewFn = Callable[[torch.Tensor], list[torch.Tensor]]
MULTISCALE_SIDES = (224, 256, 384, 480, 640)  # Table 4's shorter sides


def _scaled(px: int, size: int) -> int:
    return round(px * size / 224)


def single_view(x: torch.Tensor) -> list[torch.Tensor]:
    """The image as it is (CIFAR: the original 32x32 image, paper Section 4.2)."""
    return [x]


def flip_views(x: torch.Tensor) -> list[torch.Tensor]:
    """The image and its horizontal flip."""
    return [x, x.flip(-1)]


def center_crop(x: torch.Tensor, crop: int) -> torch.Tensor:
    """The centre ``crop`` x ``crop`` window, placed as torchvision's center_crop places it."""
    h, w = x.shape[-2:]
    top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
    return x[..., top : top + crop, left : left + crop]


def center_view(x: torch.Tensor, size: int = 224) -> list[torch.Tensor]:
    """ImageNet single view: shorter side 256, the centre 224x224 crop."""
    return [center_crop(resize_shorter(x, _scaled(256, size)), size)]


def ten_crop(x: torch.Tensor, size: int = 224) -> list[torch.Tensor]:
    """Table 3's 10-crop testing: the 4 corner and the centre 224x224 crops of the image
    resized to shorter side 256, and their horizontal flips (flips last)."""
    r = resize_shorter(x, _scaled(256, size))
    h, w = r.shape[-2:]
    c = size
    crops = [
        r[..., :c, :c],  # top left
        r[..., :c, w - c :],  # top right
        r[..., h - c :, :c],  # bottom left
        r[..., h - c :, w - c :],  # bottom right
        center_crop(r, c),
    ]
    return crops + [v.flip(-1) for v in crops]


def multiscale(
    x: torch.Tensor, size: int = 224, sides: tuple[int, ...] = MULTISCALE_SIDES
) -> list[torch.Tensor]:
    """Table 4's multi-scale test: the whole image at each shorter side in ``sides`` and its
    flip (10 views of different sizes), scored fully convolutionally."""
    out = []
    for s in sides:
        r = resize_shorter(x, _scaled(s, size))
        out += [r, r.flip(-1)]
    return out


def fully_convolutional_logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The fully-convolutional form (Section 3.4, [40, 12]): the fc applied at every
    position of the final feature map as a 1x1 convolution, the class scores averaged
    over positions. (N, 3, H, W) -> (N, classes). Averaging the fc's outputs equals
    the fc of the average (it is linear), so at 224x224 this is the ordinary forward."""
    f = model.forward_features(x)  # (N, C, h, w)
    w, b = model.fc.weight, model.fc.bias  # (K, C), (K,)
    scores = torch.einsum("nchw,kc->nkhw", f, w.to(f.dtype)) + b.to(f.dtype)[:, None, None]
    return scores.mean((2, 3))


# name -> (view function of (x, size), fully convolutional?)
IMAGENET_VIEWS: dict[str, tuple[Callable[..., list[torch.Tensor]], bool]] = {
    "single": (center_view, False),
    "10crop": (ten_crop, False),
    "multiscale": (multiscale, True),
}
VIEWS: dict[str, ViewFn] = {"single": single_view, "flip": flip_views}


def get_view(name: str) -> ViewFn:
    if name not in VIEWS:
        raise ValueError(f"unknown view {name!r}; one of {sorted(VIEWS)}")
    return VIEWS[name]
