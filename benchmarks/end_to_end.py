"""End-to-end training loop vs the bench step rate, in one process (issue 4).

The bench step feeds one pre-made float batch; the training loop adds the data pipeline
(index the uint8 device dataset, batched crop/flip, mean subtraction), the lr schedule
and the bookkeeping. Target: the loop within 10% of the step rate.

Usage: RESLEARN_DATA_ROOT=../shared/data python benchmarks/end_to_end.py [--iterations 390]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch

from reslearn.bench import bench_model, matmul_rate
from reslearn.speed import SpeedSettings, select_device
from reslearn.train import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig, read_metrics, train


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet20")
    p.add_argument("--iterations", type=int, default=390, help="390 = one epoch of 50k at batch 128")
    p.add_argument("--device", default="auto")
    a = p.parse_args()
    dev = select_device(a.device)
    data = Path(os.environ.get("RESLEARN_DATA_ROOT", "../shared/data")) / "cifar10-jpeg"
    amp = SpeedSettings.fast(dev).amp_dtype or torch.float32
    rates = {torch.float32: matmul_rate(dev, torch.float32), amp: matmul_rate(dev, amp)}
    step = bench_model(a.model, "reslearn", dev, 128, rates, repeats=7, steps=5 if dev.type == "cpu" else 50)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(
            ModelConfig(a.model),
            DataConfig(str(data), download=False),
            # The schedule is irrelevant to speed; eval only at the end, outside the timing.
            OptimConfig(iterations=a.iterations),
            RunConfig(
                out=str(Path(tmp) / "run"),
                device=str(dev),
                eval_every=a.iterations,
                progress="none",
                tensorboard=False,
            ),
        )
        rows = read_metrics(train(cfg))
    loop = rows[-1]["images_per_s"]
    print(
        f"{a.model} on {dev}: bench step {step.train_img_s:.1f} img/s, end-to-end loop "
        f"{loop:.1f} img/s over {a.iterations} iterations: loop/step = {loop / step.train_img_s:.3f}"
    )


if __name__ == "__main__":
    main()
