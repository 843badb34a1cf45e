"""Folders of images, whatever the data set: what a class folder and an image file are,
and the error every reader raises for bad data (named, one line)."""

from __future__ import annotations

from pathlib import Path

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
