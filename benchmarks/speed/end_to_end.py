"""End-to-end training loop vs the bench step rate, in one process (issue 4).

The bench step feeds one pre-made float batch; the training loop adds the data pipeline
(index the uint8 device dataset, batched crop/flip, mean subtraction), the lr schedule
and the bookkeeping. Target: the loop within 10% of the step rate.

Usage: RESLEARN_DATA_ROOT=../shared/data python benchmarks/speed/end_to_end.py [--iterations 390]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for benchmarks/originals.py
from originals import cifar10_dir  # noqa: E402  the original CIFAR-10
from reslearn.bench import bench_model
from reslearn.speed import select_device
from reslearn.train import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig, read_metrics, train


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet20")
    p.add_argument("--iterations", type=int, default=390, help="390 = one epoch of 50k at batch 128")
    p.add_argument("--device", default="auto")
    a = p.parse_args()
    dev = select_device(a.device)
    data = cifar10_dir()
    # The bench step (reslearn bench's protocol, fast path alone) before and after the loop,
    # so that a drift of the machine during the loop shows up as a before/after gap.
    before = bench_model(a.model, dev, 128, ("reslearn",))[0].train_img_s
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
                threads=torch.get_num_threads(),  # the bench step's count, whatever else runs
            ),
        )
        rows = read_metrics(train(cfg))
    after = bench_model(a.model, dev, 128, ("reslearn",))[0].train_img_s
    loop = rows[-1]["images_per_s"]
    step = (before + after) / 2
    print(
        f"{a.model} on {dev}: bench step {before:.1f} img/s before and {after:.1f} after, end-to-end "
        f"loop {loop:.1f} img/s over {a.iterations} iterations: loop/step = {loop / step:.3f}"
    )


if __name__ == "__main__":
    main()
