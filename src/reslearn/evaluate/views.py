"""Test-time views: pure functions from an image batch to the list of views scored.

A view function takes (N, 3, H, W) images of one size (any dtype, any device) and returns
a list of batches, one per view; :func:`reslearn.evaluate.evaluate` averages the softmax
scores over them (paper Section 3.4). Sizes are for 224x224 training; ``size`` scales
them for nets trained at another resolution (e.g. 112: resize 128, crop 112).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..data.augment import center_crop, center_view
from ..data.augment import resize_shorter_reference as resize_shorter
from ..registry import Registry

ViewFn = Callable[[torch.Tensor], list[torch.Tensor]]
MULTISCALE_SIDES = (224, 256, 384, 480, 640)  # Table 4's shorter sides


def _scaled(px: int, size: int) -> int:  # a 224-crop size in pixels, for a net trained at ``size``
    return round(px * size / 224)


def single_view(x: torch.Tensor) -> list[torch.Tensor]:
    """The image as it is (CIFAR: the original 32x32 image, paper Section 4.2)."""
    return [x]


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


@dataclass(frozen=True)
class TestView:
    """A test protocol for ImageNet-layout data: how it makes the views of a batch of
    images of one size ((N, 3, H, W), the training crop size) -> list of view batches,
    whether the net scores them fully convolutionally, and how many images a batch holds
    (None: the caller's; 1 when the views of one image differ in size)."""

    name: str
    make: Callable[[torch.Tensor, int], list[torch.Tensor]]
    fully_convolutional: bool = False
    images_per_batch: int | None = None

    def batch_size(self, asked: int) -> int:
        return self.images_per_batch or asked


# The one registry of test views: `reslearn eval --views`, evaluate_checkpoint and the
# training engine's val/ split all take their views from here.
TEST_VIEWS: Registry[TestView] = Registry(
    "views",
    TestView("single", center_view),  # Section 3.4: shorter side 256, centre 224 crop
    TestView("10crop", ten_crop),  # Table 3
    TestView("multiscale", multiscale, fully_convolutional=True, images_per_batch=1),  # Table 4
)
get_test_view = TEST_VIEWS.lookup
