"""Folders of images, whatever the data set: what a class folder and an image file are,
and the error every reader raises for bad data (named, one line)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..io import open_image

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp"}


class DataError(ValueError):
    """The data set is missing, corrupt or laid out in a way we do not understand."""


def class_folders(split_dir: Path) -> list[str]:
    """The class folders of ``split_dir``, sorted. Names starting with "." (.cache/,
    .ipynb_checkpoints/, .git/) are not classes; fewer than two classes is an error."""
    names = sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
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
            a = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as e:  # truncated, not an image, unreadable, too large
        raise DataError(f"cannot read image {str(path)!r}: {e}") from e
    return torch.from_numpy(a.transpose(2, 0, 1).copy())
