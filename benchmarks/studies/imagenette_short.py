"""The ImageNet path end to end at a CPU budget (issue 9), on Imagenette (10 ImageNet classes).

1. `reslearn reproduce imagenet` with plain18, plain34, resnet18 and resnet34: the paper's
   ImageNet recipe and augmentation (scale [256, 480], crop, flip, PCA lighting, per-pixel
   mean), scaled to a smaller crop for this CPU, a short run, one seed: Figure 4 at a short
   budget, with its report (verdicts computed from the numbers).
2. The trained resnet18 evaluated with the paper's three test protocols on the val split:
   single centre crop, 10-crop (Table 3), multi-scale fully-convolutional (Table 4).

Usage: RESLEARN_DATA_ROOT=../shared/data python benchmarks/studies/imagenette_short.py
       [--image-size 112] [--iterations 480] [--batch-size 64] [--out docs/imagenette-short]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from reslearn.cli import main as cli_main
from reslearn.evaluate import evaluate_checkpoint


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--image-size", type=int, default=112)
    p.add_argument("--iterations", type=int, default=480, help="480 x 64 = about 6 epochs of 5,000 images")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--eval-every", type=int, default=80)
    p.add_argument("--models", default="plain18,plain34,resnet18,resnet34")
    p.add_argument("--out", default="docs/imagenette-short")
    p.add_argument("--device", default="auto")
    a = p.parse_args()
    data = Path(os.environ.get("RESLEARN_DATA_ROOT", "../shared/data")) / "imagenette-224"
    t0 = time.perf_counter()
    argv = [
        "reproduce",
        "imagenet",
        "--out",
        a.out,
        "--models",
        a.models,
        "--data-dir",
        str(data),
        "--iterations",
        str(a.iterations),
        "--eval-every",
        str(a.eval_every),
        "--image-size",
        str(a.image_size),
        "--batch-size",
        str(a.batch_size),
        "--device",
        a.device,
    ]
    rc = cli_main(argv)
    print(f"study wall time: {time.perf_counter() - t0:.0f} s")
    if rc:
        raise SystemExit(rc)
    views = {}
    for v in ("single", "10crop", "multiscale"):
        t1 = time.perf_counter()
        res = evaluate_checkpoint(Path(a.out) / "resnet18-s1", views=v, device=a.device)
        res["wall_s"] = time.perf_counter() - t1
        views[v] = res
        err = f"top-1 {res['top1_err']:.2f}%  top-5 {res['top5_err']:.2f}%"
        print(f"resnet18 {v:10s} {err}  ({res['wall_s']:.0f} s)")
    (Path(a.out) / "resnet18_views.json").write_text(json.dumps(views, indent=1) + "\n")
    print((Path(a.out) / "report.md").read_text())


if __name__ == "__main__":
    main()
