"""Tiny synthetic data sets written in the canonical formats, and the tests' training config."""

from pathlib import Path

import numpy as np
from PIL import Image

from reslearn.data.cifar import PICKLE_DIR, TEST_BATCH, TRAIN_BATCHES, write_pickle_batch
from reslearn.train import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig, read_metrics

TIMING = ("images_per_s", "wall_s")  # the metrics that differ between two runs of the same numbers


def rows(run) -> list[dict]:
    """A run's metrics rows without the timing columns: what must match to the last bit."""
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(run)]


def train_cfg(data_dir, out, iterations=12, model="cifar_resnet8", batch=32, **run) -> TrainConfig:
    """The tests' one training config: a tiny net on tiny data (no download), on CPU, quiet,
    an evaluation every 6 iterations; ``run`` sets any other RunConfig field."""
    run = {"out": str(out), "device": "cpu", "progress": "none", "tensorboard": False, "eval_every": 6, **run}
    return TrainConfig(
        ModelConfig(model),
        DataConfig(str(data_dir), download=False),
        OptimConfig(batch_size=batch, iterations=iterations),
        RunConfig(**run),
    )


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


IMAGENET_WNIDS = ("n01440764", "n01443537", "n01484850")  # tench, goldfish, great white shark


def write_imagenet_folder(
    root: Path, per_class: int = 4, val_per_class: int = 2, wnids=IMAGENET_WNIDS
) -> Path:
    """train/<wnid>/*.JPEG and val/<wnid>/*.JPEG photos of mixed sizes (learnable colours)."""
    sizes = [(96, 72), (64, 80), (120, 64), (72, 72)]
    for split, n in (("train", per_class), ("val", val_per_class)):
        for c, wnid in enumerate(wnids):
            (root / split / wnid).mkdir(parents=True)
            x, _ = synthetic_images(n, seed=c + (100 if split == "val" else 0))
            for i, img in enumerate(x):
                w, h = sizes[i % len(sizes)]
                im = Image.fromarray(img.transpose(1, 2, 0)).resize((w, h))
                im.save(root / split / wnid / f"{wnid}_{i}.JPEG", quality=90)
    return root


def publish_in(weights: Path, run, name: str, monkeypatch) -> Path:
    """``run`` exported as the published net ``name`` in a zoo at ``weights`` (listed with its
    sha256, a made-up error), which becomes reslearn's zoo for the test. Returns the file."""
    import json

    from reslearn import published
    from reslearn.cli import main as cli_main

    weights.mkdir(parents=True, exist_ok=True)
    f = weights / f"{name}.safetensors"
    assert cli_main(["export", str(run), "--format", "safetensors", "--out", str(f)]) == 0
    entry = {
        "name": name,
        "model": "cifar_resnet8",
        "file": f.name,
        "sha256": published.sha256(f),
        "test_err": 50.0,
    }
    (weights / "index.json").write_text(json.dumps({"nets": [entry]}))
    monkeypatch.setattr(published, "WEIGHTS_DIR", weights)
    return f
