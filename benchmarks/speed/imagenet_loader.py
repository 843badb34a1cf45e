"""Training-loader throughput on full-size ImageNet photos (issue 9), per worker.

Ours: reslearn.data.imagenet's training sample (decode, with the reduced-size DCT decode
when it pays; shorter side to a random integer in [256, 480]; random 224 crop; flip),
as one DataLoader worker runs it. Reference: torchvision's classic pipeline (PIL decode,
transforms.Resize(random side), RandomCrop(224), RandomHorizontalFlip, PILToTensor), the
same augmentation. Both in one process, interleaved over several rounds, on
../shared/data/imagenet-samples (100 photos, mostly about 500x375). Lighting noise and
mean subtraction run batched on the training device, so they are not part of this.

Usage: RESLEARN_DATA_ROOT=../shared/data python benchmarks/speed/imagenet_loader.py [--rounds 5] [--size 224]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from PIL import Image
from torchvision import transforms

from reslearn.data.imagenet import TRAIN_SCALE, _TrainImages


def reference_sample(path: Path, g: torch.Generator, size: int) -> torch.Tensor:
    lo, hi = (round(s * size / 224) for s in TRAIN_SCALE)
    side = int(torch.randint(lo, hi + 1, (1,), generator=g))
    with Image.open(path) as im:
        im = im.convert("RGB")
        t = transforms.Compose(
            [
                transforms.Resize(side),
                transforms.RandomCrop(size),
                transforms.RandomHorizontalFlip(),
                transforms.PILToTensor(),
            ]
        )
        return t(im)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--size", type=int, default=224)
    a = p.parse_args()
    torch.set_num_threads(1)  # a DataLoader worker runs one thread
    root = Path(os.environ.get("RESLEARN_DATA_ROOT", "../shared/data")) / "imagenet-samples"
    files = sorted(root.glob("*.JPEG"))
    if not files:
        raise SystemExit(f"no photos in {root}")
    scale = tuple(round(s * a.size / 224) for s in TRAIN_SCALE)
    ours_ds = _TrainImages([(f, 0) for f in files], 0, a.size, scale, augment=True, skip_bad=False)
    rates = {"reslearn": [], "torchvision": []}
    for r in range(a.rounds + 1):  # round 0 warms the page cache and is discarded
        for name in ("reslearn", "torchvision") if r % 2 else ("torchvision", "reslearn"):
            g = torch.Generator().manual_seed(r)
            t0 = time.perf_counter()
            for i, f in enumerate(files):
                if name == "reslearn":
                    x, _ = ours_ds[i]
                else:
                    x = reference_sample(f, g, a.size)
                assert x.shape == (3, a.size, a.size)
            dt = time.perf_counter() - t0
            if r:
                rates[name].append(len(files) / dt)
    med = {k: statistics.median(v) for k, v in rates.items()}
    for k, v in rates.items():
        print(f"{k:12s} img/s per worker: median {med[k]:.1f}  (rounds: {', '.join(f'{x:.1f}' for x in v)})")
    ratio = med["reslearn"] / med["torchvision"]
    print(f"reslearn / torchvision = {ratio:.2f}  ({len(files)} photos, crop {a.size})")


if __name__ == "__main__":
    main()
