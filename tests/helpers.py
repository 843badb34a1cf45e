"""Tiny synthetic CIFAR-style data sets written in the canonical formats."""

from pathlib import Path

import numpy as np
from PIL import Image

from reslearn.data.cifar import PICKLE_DIR, TEST_BATCH, TRAIN_BATCHES, write_pickle_batch


def synthetic_images(n: int, seed: int, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Learnable images: each class has its own mean colour, plus noise. (n, 3, 32, 32)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    colours = np.random.default_rng(0).integers(30, 225, (classes, 3))
    x = colours[y][:, :, None, None] + rng.normal(0, 25, (n, 3, 32, 32))
    return np.clip(x, 0, 255).astype(np.uint8), y


def write_pickle_cifar(root: Path, per_batch: int = 40, test: int = 60) -> Path:
    d = root / PICKLE_DIR
    d.mkdir(parents=True)
    for i, name in enumerate(TRAIN_BATCHES):
        x, y = synthetic_images(per_batch, seed=i + 1)
        write_pickle_batch(d / name, x, y.tolist())
    x, y = synthetic_images(test, seed=99)
    write_pickle_batch(d / TEST_BATCH, x, y.tolist())
    return root


def write_imagefolder(root: Path, per_class: int = 3, classes=("cat", "dog", "frog")) -> Path:
    for split in ("train", "test"):
        for c, name in enumerate(classes):
            (root / split / name).mkdir(parents=True)
            x, _ = synthetic_images(per_class, seed=c)
            for i, img in enumerate(x):
                ext = "png" if i % 2 else "jpg"
                Image.fromarray(img.transpose(1, 2, 0)).save(root / split / name / f"{i}.{ext}")
    return root
