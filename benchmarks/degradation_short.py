"""Short-budget degradation study on this CPU (issue 5).

Trains plain20, plain56, resnet20, resnet56 (one seed) with the paper's CIFAR recipe
scaled to --iterations, using the project's own command (`reslearn reproduce cifar`),
which also computes the Figure 7 responses and writes DIR/report.md with its figures.

Usage: RESLEARN_DATA_ROOT=../shared/data python benchmarks/degradation_short.py
          [--iterations 1000] [--out docs/degradation-short] [--jpeg]
Data: the original CIFAR-10 (benchmarks/originals.py); --jpeg re-checks a study measured
on the shared JPEG copy (the 4k, 16k and first 64k studies were).
Checkpoints (last.pt) stay out of git; the report, figures and metrics are kept.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from originals import cifar10_dir, cifar10_jpeg_dir
from reslearn.cli import main as cli_main


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--seeds", default="1")
    p.add_argument("--models", default="plain20,plain56,resnet20,resnet56")
    p.add_argument("--out", default="docs/degradation-short")
    p.add_argument("--device", default="auto")
    p.add_argument("--jpeg", action="store_true", help="the JPEG copy, for studies measured on it")
    a = p.parse_args()
    data = cifar10_jpeg_dir() if a.jpeg else cifar10_dir()
    t0 = time.perf_counter()
    rc = cli_main(
        [
            "reproduce",
            "cifar",
            "--out",
            a.out,
            "--models",
            a.models,
            "--seeds",
            a.seeds,
            "--iterations",
            str(a.iterations),
            "--eval-every",
            str(a.eval_every),
            "--data-dir",
            str(data),
            "--device",
            a.device,
        ]
    )
    print(f"wall time: {time.perf_counter() - t0:.0f} s")
    report = Path(a.out) / "report.md"
    if report.exists():
        print(report.read_text())
    raise SystemExit(rc)


if __name__ == "__main__":
    main()
