"""Which speed options pay for a ResNet training step on this machine (issue 4).

Times one training step (forward, backward, SGD update) of a CIFAR net at batch 128 for
each variant, in one process, median of repeats, warm-up excluded. Variants: memory
format, bf16 autocast, torch.compile, optimizer implementation, thread count.

Usage: python benchmarks/speed/cpu_ablation.py [--model resnet20] [--compile]
"""

from __future__ import annotations

import argparse

import torch

from reslearn import create_model
from reslearn.bench import time_fn
from reslearn.train import SpeedSettings, TrainStep

BF16 = torch.bfloat16


def measure(model_name, speed, opt_kw, threads, device, repeats, steps, warmup) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_model(model_name).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4, **opt_kw)
    step = TrainStep(model, opt, speed, device)
    x = torch.randn(128, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (128,), device=device)
    return 128 / time_fn(lambda: step(x, y), device, warmup, repeats, steps)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet20")
    p.add_argument("--compile", action="store_true", help="also time torch.compile variants (slow to build)")
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    dev = torch.device("cpu")
    n = torch.get_num_threads()
    variants = [
        ("baseline: NCHW fp32, foreach SGD", SpeedSettings(), {}, n),
        ("channels_last fp32", SpeedSettings(channels_last=True), {}, n),
        ("NCHW bf16", SpeedSettings(amp_dtype=BF16), {}, n),
        ("channels_last bf16 (default on AMX)", SpeedSettings(True, BF16), {}, n),
        ("channels_last bf16, fused SGD", SpeedSettings(True, BF16), {"fused": True}, n),
        ("channels_last bf16, for-loop SGD", SpeedSettings(True, BF16), {"foreach": False}, n),
        ("channels_last bf16, 1 thread", SpeedSettings(True, BF16), {}, 1),
    ]
    if a.compile:
        variants += [
            ("channels_last fp32 + torch.compile", SpeedSettings(True, None, True), {}, n),
            ("channels_last bf16 + torch.compile", SpeedSettings(True, BF16, True), {}, n),
        ]
    rows = []
    for name, speed, kw, threads in variants:
        warm = 6 if speed.compile else 2
        rows.append((name, measure(a.model, speed, kw, threads, dev, a.repeats, 3, warm)))
        print(f"{name:<42}{rows[-1][1]:>9.1f} img/s", flush=True)
    base = rows[0][1]
    print(f"\n{a.model}, batch 128, {n} threads; ratio to the baseline of this run:")
    for name, v in rows:
        print(f"| {name} | {v:.1f} | {v / base:.2f}x |")


if __name__ == "__main__":
    main()
