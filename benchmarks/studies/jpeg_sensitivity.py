"""How much JPEG compression moves a trained CIFAR-10 net's test error (issue 22, item 2).

Our CIFAR-10 copy (../shared/data/cifar10-jpeg) is a JPEG re-encoding of the official
images at quality 75 with 4:2:0 chroma (PSNR 27-33 dB against the originals, says its
README). The originals are not here, so the net cannot be tested on both. What can be
measured: the same trained net on the test split as shipped and on that split compressed
once more (each image decoded and re-encoded with Pillow at the qualities given), with the
mean PSNR of each re-encoding against the shipped pixels. Quality 95 with 4:4:4 chroma is
the control (almost no further loss); 75 and 50 with 4:2:0 add loss of the kind the copy
already has. How the error moves per dB of PSNR lost tells the direction and the rough
size of what the first q75 pass may have cost (an estimate, not a measurement of it).

Usage: python benchmarks/studies/jpeg_sensitivity.py RUN [RUN ...] [--qualities 95,75,50]
       [--data-dir ../shared/data/cifar10-jpeg] [--work /tmp/jpeg-sensitivity]
"""

from __future__ import annotations

import argparse
import io
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

from reslearn.evaluate import evaluate_checkpoint


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def reencode(src: Path, dst: Path, quality: int) -> float:
    """Every test image of ``src`` compressed once more into ``dst`` (same layout; q >= 95
    keeps full chroma, lower qualities subsample it 4:2:0 as the copy does). Returns the
    mean PSNR (dB) against the images as shipped."""
    subsampling = 0 if quality >= 95 else 2  # Pillow: 0 = 4:4:4, 2 = 4:2:0
    values = []
    for path in sorted((src / "test").glob("*/*.jpg")):
        with Image.open(path) as im:
            shipped = im.convert("RGB")
        buf = io.BytesIO()
        shipped.save(buf, "JPEG", quality=quality, subsampling=subsampling)
        out = dst / "test" / path.parent.name / path.name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(buf.getvalue())
        with Image.open(io.BytesIO(buf.getvalue())) as again:
            values.append(psnr(np.asarray(shipped), np.asarray(again.convert("RGB"))))
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.inf


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="+")
    p.add_argument("--qualities", default="95,75,50")
    root = Path(os.environ.get("RESLEARN_DATA_ROOT", "../shared/data"))
    p.add_argument("--data-dir", default=str(root / "cifar10-jpeg"))
    p.add_argument("--work", default="/tmp/jpeg-sensitivity")
    a = p.parse_args()
    src = Path(a.data_dir)
    copies = {"as shipped (q75, 4:2:0)": (src, None)}
    for q in (int(x) for x in a.qualities.split(",")):
        dst = Path(a.work) / f"q{q}"
        dst.mkdir(parents=True, exist_ok=True)
        if not (dst / "train").exists():  # the folder reader wants both splits; only test/ is read
            (dst / "train").symlink_to((src / "train").resolve(), target_is_directory=True)
        chroma = "4:4:4" if q >= 95 else "4:2:0"
        copies[f"+ one more pass at q{q} ({chroma})"] = (dst, reencode(src, dst, q))
    header = "| test images | mean PSNR vs shipped (dB) | " + " | ".join(Path(r).name for r in a.runs) + " |"
    print(header)
    print("|---|---:|" + "---:|" * len(a.runs))
    shipped = {}  # run -> test error (%) on the images as shipped: the first row
    for label, (folder, db) in copies.items():
        cells = []
        for run in a.runs:
            err = evaluate_checkpoint(run, data_dir=str(folder), device="cpu")["top1_err"]
            cells.append(f"{err:.2f}" + (f" ({err - shipped[run]:+.2f})" if run in shipped else ""))
            shipped.setdefault(run, err)
        print(f"| {label} | {'-' if db is None else f'{db:.1f}'} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
