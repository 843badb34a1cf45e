"""Folders of images, whatever the data set: what a class folder and an image file are,
and the error every reader raises for bad data (named, one line)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from ..files import open_image

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp"}


class DataError(ValueError):
    """The data set is missing, corrupt or laid out in a way we do not understand."""


def class_folders(split_dir: Path) -> list[str]:
    """The class folders of ``split_dir``, sorted. Names starting with "." (.cache/,
    .ipynb_checkpoints/, .git/) are not classes; fewer than two classes is an error."""
    names = sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    for name in names:  # a class name is stored in checkpoints and printed: it must be text
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            raise DataError(
                f"the class folder {shown!r} in {str(split_dir)!r} has a name that is not UTF-8 "
                f"text; rename it (class names are stored with the net and printed)"
            ) from None
    if len(names) < 2:
        found = f"only {names[0]!r}" if names else "none"
        raise DataError(
            f"{str(split_dir)!r} needs at least two class folders (<class>/<image files>); found {found}"
        )
    return names


def image_files_in(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name; hidden files ("._x.jpg") skipped."""
    return [
        p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".")
    ]


def labelled_files(split_dir: Path, classes: list[str]) -> list[tuple[Path, int]]:
    """(file, label) of ``split_dir/<class>/*`` for ``classes`` in order (label = position),
    files sorted by name. A split may lack a class folder (a small test split); a class
    folder without images, or a split without any, is an error naming it."""
    items = []
    for label, c in enumerate(classes):
        if (split_dir / c).is_dir():
            files = image_files_in(split_dir / c)
            if not files:
                raise DataError(f"class folder {str(split_dir / c)!r} holds no images")
            items += [(p, label) for p in files]
    if not items:
        raise DataError(f"no images under {str(split_dir)!r} (expected {split_dir}/<class>/*.jpg|png)")
    return items


def decode_rgb(path: Path, shorter: int | None = None) -> torch.Tensor:
    """(3, H, W) uint8 RGB of an image file; an unreadable one is a DataError naming it.
    With ``shorter``, JPEGs are decoded at the smallest DCT scale (1/2, 1/4, 1/8) that
    still leaves the shorter side >= ``shorter`` (libjpeg's reduced-size decode through
    Pillow's draft mode: 2-4x less work for 500x375 photos at 128)."""
    try:
        with open_image(path) as im:
            if shorter is not None and im.format == "JPEG":
                w, h = im.size
                f = shorter / min(w, h)
                if f < 0.5:
                    im.draft("RGB", (max(1, int(w * f + 0.999)), max(1, int(h * f + 0.999))))
            a = np.asarray(_rgb(im), dtype=np.uint8)
    except Exception as e:  # truncated, not an image, unreadable, too large
        raise DataError(f"cannot read image {str(path)!r}: {e}") from e
    return torch.from_numpy(a.transpose(2, 0, 1).copy())


def _rgb(im):
    """An image of any mode as 8-bit RGB: palette, greyscale, RGBA (alpha dropped) and CMYK
    through Pillow's conversion; 16- and 32-bit greyscale scaled to 0..255 first (Pillow's
    own conversion would clip them)."""
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        grey = np.clip(np.round(a * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return im.convert("RGB")


def stratified_holdout(
    labels: list[int], k: int | float, seed: int = 0, order: list[str] | None = None
) -> tuple[list[int], list[int]]:
    """Indices (train, held out): ``k`` images (or the fraction ``k`` < 1) held out, spread over
    the classes in proportion to their size (at least one of each class with 2+ images).
    Within a class the held-out ones are those first by a seeded shuffle or, given ``order``
    (one key per image: its class folder and file name), first by the SHA-1 of their key: an
    image added later takes a held-out place only if its hash sorts before, so the split
    of the images already there barely moves (issue 32)."""
    n = len(labels)
    frac = k if k < 1 else k / n
    g = np.random.default_rng(seed)
    train, held = [], []
    for c in sorted(set(labels)):
        idx = [i for i, y in enumerate(labels) if y == c]
        if order is None:
            g.shuffle(idx)
        else:
            idx.sort(key=lambda i: hashlib.sha1(order[i].encode()).hexdigest())
        m = min(len(idx) - 1, max(1, round(frac * len(idx)))) if len(idx) > 1 else 0
        held += idx[:m]
        train += idx[m:]
    return sorted(train), sorted(held)
