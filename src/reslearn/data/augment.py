"""Batched, device-agnostic augmentation and normalisation on (N, C, H, W) tensors.

Every function works on whatever device its input lives on; randomness comes from an
explicit ``torch.Generator`` on that device so runs are reproducible and resumable.
"""

from __future__ import annotations

import torch


def random_crop_flip_params(
    n: int, pad: int, generator: torch.Generator | None = None, device=None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample offsets dy, dx in [0, 2*pad] and flip flags (N,) for :func:`crop_flip`."""
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
    flip = torch.randint(0, 2, (n,), generator=generator, device=device).bool()
    return dy, dx, flip


def crop_flip(
    x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor, pad: int
) -> torch.Tensor:
    """Zero-pad by ``pad``, take each sample's own HxW crop at (dy, dx), flip where asked.

    One gather for the whole batch (no Python loop over samples).
    x: (N, C, H, W) any dtype; dy, dx: (N,) ints in [0, 2*pad]; flip: (N,) bool.
    Returns (N, C, H, W). The crop always lies inside the padded image.
    """
    n, c, h, w = x.shape
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))  # (N, C, H+2p, W+2p), zeros
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    rows = dy[:, None] + ar_h  # (N, H)
    # Flipped samples read their crop's columns right to left.
    cols = dx[:, None] + torch.where(flip[:, None], (w - 1) - ar_w, ar_w)  # (N, W)
    idx_n = torch.arange(n, device=x.device)[:, None, None, None]
    idx_c = torch.arange(c, device=x.device)[None, :, None, None]
    return xp[idx_n, idx_c, rows[:, None, :, None], cols[:, None, None, :]]


def random_crop_flip(x: torch.Tensor, pad: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """The paper's CIFAR augmentation (Section 4.2): pad 4, random 32x32 crop, random flip."""
    dy, dx, flip = random_crop_flip_params(len(x), pad, generator, x.device)
    return crop_flip(x, dy, dx, flip, pad)


class Normalizer(torch.nn.Module):
    """uint8 (N, 3, H, W) -> float: x/255 - mean, divided by std when one is given.

    ``mean``: (3, H, W) per-pixel mean image (the paper) or (3, 1, 1) per-channel mean,
    in [0, 1] units. ``std``: None (the paper subtracts the mean only) or (3, 1, 1).
    Kept as buffers so a checkpoint carries the exact preprocessing for deployment.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("mean", mean.float().clone())
        self.register_buffer("std", (std if std is not None else torch.ones(3, 1, 1)).float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() / 255.0 - self.mean) / self.std


def fit_normalizer(train_x: torch.Tensor, mode: str = "pixel") -> Normalizer:
    """Fit on the TRAINING images only. ``pixel``: the paper's per-pixel mean subtraction;
    ``channel``: per-channel mean/std normalisation (a common deviation)."""
    x = train_x.float() / 255.0  # (N, 3, H, W)
    if mode == "pixel":
        return Normalizer(x.mean(0))
    if mode == "channel":
        return Normalizer(x.mean((0, 2, 3))[:, None, None], x.std((0, 2, 3))[:, None, None])
    raise ValueError(f"normalize must be 'pixel' or 'channel', got {mode!r}")
