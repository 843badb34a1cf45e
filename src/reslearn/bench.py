"""``reslearn bench``: training and inference throughput, baseline vs the engine's fast path.

Both modes run in one process on the same device, with synthetic inputs of the net's
paper size. Warm-up steps are excluded; each figure is the median over repeats of a
few steps; on CUDA the repeats are timed with CUDA events (device-side time).
The arithmetic ceiling is the measured multiply-adds per image (``reslearn.complexity``)
x 3 for a training step (forward, input-gradient and weight-gradient convolutions) over
the device's measured matrix-multiply rate in the mode's precision.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass

import torch

from .models import ModelSpec, complexity, create_model, get_model_spec
from .speed import SpeedSettings, select_device
from .train.config import OptimConfig
from .train.optim import TrainStep, make_optimizer

DEFAULT_MODELS = ("resnet20", "resnet56", "resnet110", "resnet18", "resnet50")


@dataclass
class BenchRow:
    model: str
    mode: str  # "baseline" or "reslearn"
    device: str
    batch_size: int
    train_img_s: float
    infer_img_s: float
    settings: str
    macs_per_image: int
    ceiling_train_img_s: float  # arithmetic ceiling for training at this mode's precision
    ceiling_infer_img_s: float

    @property
    def train_fraction(self) -> float:
        return self.train_img_s / self.ceiling_train_img_s


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn, device: torch.device, warmup: int, repeats: int, steps: int) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` groups of ``steps`` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(steps):
                fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000 / steps)
        else:
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            times.append((time.perf_counter() - t0) / steps)
    return statistics.median(times)


def matmul_rate(device: torch.device, dtype: torch.dtype, n: int | None = None) -> float:
    """Measured multiply-adds per second of a square matrix product (n x n x n)."""
    n = n or (8192 if device.type == "cuda" else 1024)
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, generator=g).to(dtype)  # random data, never zeros
    b = torch.randn(n, n, device=device, generator=g).to(dtype)
    reps = 10 if device.type == "cuda" else 3
    t = time_fn(lambda: a @ b, device, warmup=2, repeats=3, steps=reps)
    return n**3 / t


def default_batch_size(spec: ModelSpec, device: torch.device) -> int:
    if spec.family == "cifar":
        return 128
    return 256 if device.type == "cuda" else 16


def bench_model(
    name: str,
    mode: str,
    device: torch.device,
    batch_size: int | None,
    rates: dict,
    *,
    warmup: int | None = None,
    repeats: int = 5,
    steps: int | None = None,
) -> BenchRow:
    torch.manual_seed(0)
    spec = get_model_spec(name)
    model = create_model(name).to(device)
    size = spec.input_size
    macs = complexity(model, size).macs
    bs = batch_size or default_batch_size(spec, device)
    speed = SpeedSettings.baseline() if mode == "baseline" else SpeedSettings.fast(device)
    if mode == "baseline":
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    else:
        opt = make_optimizer(model, OptimConfig(lr=0.01), device)
    step = TrainStep(model, opt, speed, device)
    x = torch.randn(bs, 3, *size, device=device)
    y = torch.randint(0, model.fc.out_features, (bs,), device=device)
    cuda = device.type == "cuda"
    warmup = warmup if warmup is not None else (10 if cuda else 2)
    steps = steps or (20 if cuda else 2)
    model.train()
    t_train = time_fn(lambda: step(x, y), device, warmup, repeats, steps)
    model.eval()

    @torch.inference_mode()
    def infer():
        with speed.autocast(device):
            return step.model(speed.prepare_input(x))

    t_infer = time_fn(infer, device, warmup, repeats, steps)
    rate = rates[speed.amp_dtype or torch.float32]
    return BenchRow(
        name,
        mode,
        str(device),
        bs,
        bs / t_train,
        bs / t_infer,
        speed.describe(),
        macs,
        rate / (3 * macs),
        rate / macs,
    )


def run_bench(
    models=DEFAULT_MODELS, device: str = "auto", batch_size: int | None = None, log=print
) -> list[BenchRow]:
    dev = select_device(device)
    for m in models:
        get_model_spec(m)  # fail early, with a clear ValueError, on an unknown name
    dtypes = {torch.float32}
    if SpeedSettings.fast(dev).amp_dtype is not None:
        dtypes.add(SpeedSettings.fast(dev).amp_dtype)
    rates = {dt: matmul_rate(dev, dt) for dt in dtypes}
    for dt, r in rates.items():
        log(f"matrix-multiply rate on {dev} ({str(dt).replace('torch.', '')}): {r / 1e9:.1f} G mult-adds/s")
    rows = []
    for m in models:
        for mode in ("baseline", "reslearn"):
            rows.append(bench_model(m, mode, dev, batch_size, rates))
    return rows


def format_table(rows: list[BenchRow]) -> str:
    base = {r.model: r for r in rows if r.mode == "baseline"}
    head = (
        f"{'model':<10}{'mode':<10}{'settings':<24}{'batch':>6}{'train img/s':>13}"
        f"{'infer img/s':>13}{'train x':>9}{'infer x':>9}{'% ceiling':>11}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        b = base.get(r.model)
        tx = r.train_img_s / b.train_img_s if b else float("nan")
        ix = r.infer_img_s / b.infer_img_s if b else float("nan")
        lines.append(
            f"{r.model:<10}{r.mode:<10}{r.settings:<24}{r.batch_size:>6}"
            f"{r.train_img_s:>13.1f}{r.infer_img_s:>13.1f}{tx:>8.2f}x{ix:>8.2f}x"
            f"{100 * r.train_fraction:>10.1f}%"
        )
    lines.append(
        "train x / infer x: ratio to the baseline row of the same model, same run. "
        "% ceiling: training img/s over (matmul mult-adds/s) / (3 x mult-adds per image)."
    )
    return "\n".join(lines)


def write_json(rows: list[BenchRow], path: str) -> None:
    with open(path, "w") as f:
        json.dump([asdict(r) | {"train_fraction_of_ceiling": r.train_fraction} for r in rows], f, indent=2)
