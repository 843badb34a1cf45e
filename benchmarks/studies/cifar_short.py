"""Short CIFAR-10 benchmark (issue 3): resnet20, 2,000 iterations, the paper's recipe
scaled (lr 0.1, /10 at 1,000 and 1,500), on the original CIFAR-10 (benchmarks/originals.py).

Usage: RESLEARN_DATA_ROOT=../shared/data python benchmarks/studies/cifar_short.py [--iterations N]
Prints the test error and the training throughput; the run directory keeps metrics.jsonl.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for benchmarks/originals.py
from originals import cifar10_dir  # noqa: E402  the original CIFAR-10
from reslearn.train import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig, read_metrics, train


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet20")
    p.add_argument("--iterations", type=int, default=2000)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--device", default="auto")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    data_dir = a.data_dir or str(cifar10_dir())
    out = a.out or f"runs/bench-{a.model}-{a.iterations}-{time.strftime('%Y%m%d-%H%M%S')}"
    cfg = TrainConfig(
        ModelConfig(a.model),
        DataConfig(data_dir, download=False),
        OptimConfig(iterations=a.iterations),
        RunConfig(out=out, device=a.device, eval_every=a.eval_every, progress="log"),
    )
    t0 = time.perf_counter()
    run = train(cfg)
    wall = time.perf_counter() - t0
    rows = read_metrics(run)
    imgs = a.iterations * cfg.optim.batch_size
    summary = {
        "model": a.model,
        "iterations": a.iterations,
        "test_err": rows[-1]["test_err"],
        "train_err_last_interval": rows[-1]["train_err"],
        "images_per_s_mean": sum(r["images_per_s"] for r in rows) / len(rows),
        "images_per_s_end_to_end": imgs / wall,
        "wall_s": wall,
        "device": str(
            torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
        ),
        "threads": torch.get_num_threads(),
        "data": data_dir,
        "run_dir": str(run),
        "per_eval": [{k: r[k] for k in ("iteration", "train_err", "test_err")} for r in rows],
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
