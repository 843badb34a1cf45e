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
    An image of another size than the mean image (multi-scale testing) has the mean
    image's per-channel average subtracted: a per-pixel mean exists only at its own size.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("mean", mean.float().clone())
        self.register_buffer("std", (std if std is not None else torch.ones(3, 1, 1)).float().clone())

    @classmethod
    def from_state(cls, preprocessing: dict[str, torch.Tensor]) -> Normalizer:
        """The normaliser a checkpoint or export stores (its ``preprocessing``: mean, std)."""
        return cls(preprocessing["mean"], preprocessing.get("std"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize01(x.float() / 255.0)

    def normalize01(self, x: torch.Tensor) -> torch.Tensor:
        """Float images in [0, 1] units (after lighting noise, say) -> model input."""
        mean = self.mean
        if mean.shape[-2:] != (1, 1) and mean.shape[-2:] != x.shape[-2:]:
            mean = mean.mean((-2, -1), keepdim=True)
        return (x - mean) / self.std


def fit_normalizer(train_x: torch.Tensor, mode: str = "pixel") -> Normalizer:
    """Fit on the TRAINING images only. ``pixel``: the paper's per-pixel mean subtraction;
    ``channel``: per-channel mean/std normalisation (a common deviation).

    The moments come from exact integer sums of the uint8 pixels (chunks of images, int64),
    rounded once: the same bits on every CPU kind and thread count, where a float32
    reduction's order (vector width, threads) moves its last bit and SGD amplifies that."""
    if mode not in ("pixel", "channel"):
        raise ValueError(f"normalize must be 'pixel' or 'channel', got {mode!r}")
    n = len(train_x)
    s1 = torch.zeros(train_x.shape[1:], dtype=torch.int64, device=train_x.device)
    s2 = torch.zeros_like(s1)
    for i in range(0, n, 4096):
        chunk = train_x[i : i + 4096].to(torch.int64)
        s1 += chunk.sum(0)
        if mode == "channel":
            s2 += (chunk * chunk).sum(0)
    if mode == "pixel":
        return Normalizer((s1.double() / (255.0 * n)).float())
    m = s1[0].numel() * n  # pixels per channel
    c1, c2 = s1.sum((1, 2)), s2.sum((1, 2))  # exact, per channel
    mean = c1.double() / (255.0 * m)
    var = (c2.double() - c1.double() ** 2 / m) / (m - 1) / 255.0**2  # unbiased, as Tensor.std
    return Normalizer(mean.float()[:, None, None], var.sqrt().float()[:, None, None])


# ---------------------------------------------------------------- ImageNet (paper Section 3.4)
# AlexNet's PCA lighting noise: eigenvalues and eigenvectors of the RGB covariance of the
# ImageNet training pixels in [0, 1] units, as published with fb.resnet.torch (the Torch
# reproduction of this paper). Rows of IMAGENET_EIGVEC are R, G, B; columns the components.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)
# torchvision's per-channel normalisation (what its pretrained weights expect).
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)


def resize_shorter(img: torch.Tensor, size: int) -> torch.Tensor:
    """(..., 3, H, W) -> shorter side ``size``, aspect kept (antialiased bilinear);
    the dtype is kept. torchvision's v2 uint8 kernel: ~7x faster than the classic one on
    this CPU, for training crops (it may round a pixel one level differently)."""
    from torchvision.transforms.v2 import functional as TF

    return TF.resize(img, [size], antialias=True)


def resize_shorter_reference(img: torch.Tensor, size: int) -> torch.Tensor:
    """As :func:`resize_shorter`, with torchvision's classic ``transforms.functional.resize``:
    the kernel its reference evaluation transforms (``ResNet*_Weights.transforms()``) use, so
    that test views and ``reslearn.load``'s preprocessing give torchvision's numbers."""
    from torchvision.transforms import functional as TF1

    return TF1.resize(img, [size], antialias=True)


def center_crop(x: torch.Tensor, crop: int) -> torch.Tensor:
    """The centre ``crop`` x ``crop`` window, placed as torchvision's center_crop places it."""
    h, w = x.shape[-2:]
    top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
    return x[..., top : top + crop, left : left + crop]


def center_view(x: torch.Tensor, size: int = 224) -> list[torch.Tensor]:
    """The ImageNet single view: shorter side 256, the centre 224x224 crop (scaled with
    ``size`` for nets trained at another crop: 128/112 for 112). A list of one view."""
    return [center_crop(resize_shorter_reference(x, round(256 * size / 224)), size)]


def scale_crop_flip(
    img: torch.Tensor, shorter: int, crop: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The paper's training view of one image: shorter side resized to ``shorter`` (drawn
    by the caller, in [256, 480]), a random ``crop`` x ``crop`` window, flipped with
    probability 1/2. (3, H, W) -> (3, crop, crop), dtype kept."""
    x = resize_shorter(img, shorter)
    h, w = x.shape[-2:]
    if min(h, w) < crop:
        raise ValueError(f"shorter side {shorter} is smaller than the crop {crop}")
    top = int(torch.randint(0, h - crop + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - crop + 1, (1,), generator=generator))
    x = x[..., top : top + crop, left : left + crop]
    if bool(torch.randint(0, 2, (1,), generator=generator)):
        x = x.flip(-1)
    return x


def pca_lighting(x: torch.Tensor, std: float = 0.1, generator: torch.Generator | None = None) -> torch.Tensor:
    """AlexNet lighting noise on a batch in [0, 1] units: each image gets the RGB offset
    V (alpha * lambda), alpha ~ N(0, std) per image and component (paper Section 3.4:
    "the standard color augmentation in [21]"). (N, 3, H, W) float -> same."""
    if std == 0:
        return x
    return x + lighting_offsets(len(x), std, generator, x.device, x.dtype)[:, :, None, None]


def lighting_offsets(
    n: int, std: float, generator: torch.Generator | None, device, dtype=torch.float32
) -> torch.Tensor:
    """(n, 3) RGB offsets of :func:`pca_lighting`, one per image. The 3x3 product runs in
    float64 and is rounded once: a float32 matmul's last bit depends on the CPU's kernels
    (FMA, vector width), and one bit of input flips max-pool ties downstream."""
    vec = torch.tensor(IMAGENET_EIGVEC, device=device, dtype=torch.float64)  # (3 rgb, 3 comp)
    val = torch.tensor(IMAGENET_EIGVAL, device=device, dtype=torch.float64)
    alpha = torch.randn(n, 3, generator=generator, device=device, dtype=dtype) * std
    return ((alpha.double() * val) @ vec.T).to(dtype)


# ---------------------------------------------------------------- the recipes' pipelines
class SmallImagePipeline:
    """Section 4.2's training augmentation, run on the training device: pad 4, a random
    crop of the image's size, a random flip; the offsets are drawn for the whole global
    batch and each process takes its share, so any number of processes sees what one
    would. ``pad_fill`` "black": zero pixels padded before the normaliser (as on raw
    images; the mean image then lines up with the crop); "mean": the normaliser first (the
    mean image lines up with the image) and zeros padded after it, so the pad is the mean.
    uint8 (B, 3, H, W), this process's share of ``global_batch`` -> float."""

    def __init__(
        self, normalizer: Normalizer, generator: torch.Generator, dist, augment: bool = True,
        pad_fill: str = "black",
    ):  # fmt: skip
        if pad_fill not in ("black", "mean"):
            raise ValueError(f"pad_fill must be 'black' or 'mean', got {pad_fill!r}")
        self.normalizer, self.generator, self.dist, self.augment = normalizer, generator, dist, augment
        self.pad_fill = pad_fill

    def __call__(self, xb: torch.Tensor, global_batch: int) -> torch.Tensor:
        if not self.augment:
            return self.normalizer(xb)
        params = random_crop_flip_params(global_batch, 4, self.generator, xb.device)
        params = [self.dist.shard(p) for p in params]
        if self.pad_fill == "mean":
            return crop_flip(self.normalizer(xb), *params, pad=4)
        return self.normalizer(crop_flip(xb, *params, pad=4))


class PhotoPipeline:
    """Section 3.4's training augmentation, the part run on the training device (the scale,
    crop and flip are drawn per image while decoding, reslearn.data.imagenet): AlexNet's
    PCA lighting noise, drawn for the whole global batch (each process takes its share, as
    the crops), then the normaliser. uint8 (B, 3, S, S) -> float."""

    def __init__(
        self, normalizer: Normalizer, generator: torch.Generator, dist, augment: bool, lighting: float
    ):
        self.normalizer, self.generator, self.dist = normalizer, generator, dist
        self.lighting = lighting if augment else 0.0

    def __call__(self, xb: torch.Tensor, global_batch: int) -> torch.Tensor:
        x = xb.float() / 255.0
        if self.lighting:
            off = self.dist.shard(lighting_offsets(global_batch, self.lighting, self.generator, x.device))
            x = x + off[: len(x), :, None, None]
        return self.normalizer.normalize01(x)
