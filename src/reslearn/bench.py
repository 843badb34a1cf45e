"""``reslearn bench``: training and inference throughput, baseline vs the engine's fast path.

Protocol (issue 13), chosen so that ratios repeat on a shared, noisy machine:

- Every mode compared (``baseline`` = eager NCHW fp32 with torch's SGD; ``reslearn`` = the
  engine's default fast path; optional candidates such as ``compile``) is built once, in
  one process, on the same device, with synthetic inputs of the net's paper size.
- Warm-up is discarded: each mode's first call (which includes any compilation, reported
  as ``first_step_s``) and then about one window of steps, which also fixes how many
  steps one window holds (at least one; windows of ``seconds`` of training).
- Then ``repeat`` rounds; in each round every mode runs one window, the order reversed
  every other round (no mode always runs first, after the other one heats or cools the
  caches and clocks). Inference windows are half as long.
- Reported per mode: median and min-max of img/s over the rounds. The ratio to the
  baseline is computed **per round** (the two windows of a round are seconds apart, so
  slow drifts of the machine cancel) and reported as median and min-max.

On CUDA the windows are timed with CUDA events (device-side time).

The ceiling (``% ceiling``) is what a step would reach if every multiply-add of it ran at
the best rate this device showed in the mode's precision and memory format: the exact
mult-adds of a training image (each convolution's and the fc's forward, weight gradient
and, except for the stem, input gradient) over the best rate among the net's own layers,
each timed alone at its real shape on inputs already in that precision (hot caches, no
casts, best of 3), and a 1024^3 matrix product. The real step runs all these layers,
none faster than the best of them, plus everything else (batch norm, ReLU, additions,
casts, the loss, the update), so it stays below the ceiling. (The ceiling before issue
18, the matrix product's rate over 3x the forward mult-adds, sat below what the nets
reached on an AVX-512 CPU: oneDNN's convolutions beat a 1024^3 sgemm there.)
"""

from __future__ import annotations

import copy
import json
import math
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from .models import ModelSpec, complexity, create_model, get_model_spec
from .models.complexity import layer_macs
from .speed import SpeedSettings, select_device
from .train.config import OptimConfig
from .train.optim import make_optimizer
from .train.step import TrainStep

DEFAULT_MODELS = ("resnet20", "resnet56", "resnet110", "resnet18", "resnet50")
DEFAULT_REPEAT = 5
DEFAULT_SECONDS = 4.0  # training window; about a minute per model for two modes on CPU


# name -> the settings of that mode on a device (what `--modes` accepts)
_MODES = {
    "baseline": lambda dev: SpeedSettings.baseline(),  # eager NCHW fp32
    "reslearn": SpeedSettings.fast,  # what `reslearn train` uses by default on this device
    "channels_last": lambda dev: SpeedSettings(channels_last=True),
    "bf16": lambda dev: SpeedSettings(channels_last=True, amp_dtype=torch.bfloat16),
    "compile": lambda dev: replace(SpeedSettings.fast(dev), compile=True),
    "compile_bf16": lambda dev: SpeedSettings(channels_last=True, amp_dtype=torch.bfloat16, compile=True),
}
MODES = tuple(_MODES)


def _mode_settings(mode: str, device: torch.device) -> SpeedSettings:
    if mode not in _MODES:
        raise ValueError(f"unknown bench mode {mode!r} (choose from {', '.join(MODES)})")
    return _MODES[mode](device)


@dataclass
class BenchRow:
    model: str
    mode: str
    device: str
    batch_size: int
    settings: str
    rounds: int
    window_s: float  # seconds of one training window
    first_step_s: float  # the first training call: includes compilation, if any
    train_img_s: float  # median over rounds
    train_img_s_min: float
    train_img_s_max: float
    infer_img_s: float
    infer_img_s_min: float
    infer_img_s_max: float
    train_ratio: float  # median over rounds of (this mode / baseline, same round)
    train_ratio_min: float
    train_ratio_max: float
    infer_ratio: float
    infer_ratio_min: float
    infer_ratio_max: float
    macs_per_image: int  # forward (reslearn.complexity)
    train_macs_per_image: float  # forward, input and weight gradients of the conv and fc layers
    peak_macs_s: float  # the best training mult-add rate measured in this mode (module docstring)
    ceiling_train_img_s: float  # peak_macs_s / train_macs_per_image: no step runs faster
    ceiling_infer_img_s: float

    @property
    def train_fraction(self) -> float:
        return self.train_img_s / self.ceiling_train_img_s


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device, steps: int) -> float:
    """Seconds per call of ``fn`` over ``steps`` back-to-back calls."""
    _sync(device)
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(steps):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000 / steps
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def time_fn(fn, device: torch.device, warmup: int, repeats: int, steps: int) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` groups of ``steps`` calls (one
    function alone; ``reslearn bench`` interleaves modes instead)."""
    for _ in range(warmup):
        fn()
    return statistics.median(_timed(fn, device, steps) for _ in range(repeats))


def _layer_calls(model: nn.Module, x: torch.Tensor) -> Counter:
    """The net's convolution and linear calls in one training forward: (layer, input
    shape, input needs its gradient) -> how many times, identical layers merged."""
    calls: Counter = Counter()

    def hook(mod, inp, out):
        k = (repr(mod), tuple(inp[0].shape), inp[0].requires_grad)
        if k not in calls:
            layer_of[k] = mod
        calls[k] += 1

    layer_of: dict = {}
    kinds = (nn.Conv2d, nn.Linear)
    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    try:
        model.train()
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return Counter({(layer_of[k], *k[1:]): n for k, n in calls.items()})


def _layer_fns(calls: Counter, speed: SpeedSettings, device: torch.device):
    """One (train, infer, calls, train mult-adds, forward mult-adds) per distinct layer call:
    copies of the layer in the mode's precision and memory format, fed a random input of
    its shape. A training call is the forward, the weight gradient and (unless the input
    is the image) the input gradient: 3x or 2x the forward's mult-adds."""
    dtype = speed.amp_dtype or speed.dtype
    fns = []
    for (mod, shape, needs_grad), n in calls.items():
        layer = copy.deepcopy(mod).to(device=device, dtype=dtype)
        x = torch.randn(shape, device=device, dtype=dtype)
        if x.dim() == 4:  # the mode's layout; the precision is the mode's already
            layer, x = speed.prepare_model(layer), x.contiguous(memory_format=speed.memory_format)
        x.requires_grad_(needs_grad)
        with torch.no_grad():
            out = layer(x)
        grad, macs = torch.randn_like(out), layer_macs(layer, out)
        params = list(layer.parameters())

        def train(layer=layer, x=x, grad=grad, params=params):
            for p in params:
                p.grad = None  # as zero_grad(set_to_none=True): no accumulation
            x.grad = None
            layer(x).backward(grad)

        @torch.inference_mode()
        def infer(layer=layer, x=x):
            layer(x)

        fns.append((train, infer, n, macs * (3 if needs_grad else 2), macs))
    return fns


def matmul_rate(device: torch.device, dtype: torch.dtype, n: int = 1024) -> float:
    """Multiply-adds per second of one n x n x n matrix product (best of 3)."""
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, generator=g).to(dtype)  # random data, never zeros
    b = torch.randn(n, n, device=device, generator=g).to(dtype)
    a @ b
    return n**3 / min(_timed(lambda: a @ b, device, 1) for _ in range(3))


@dataclass(frozen=True)
class Ceiling:
    """What bounds a step of one net in one mode: its exact mult-adds per image and the
    best multiply-add rate measured in the mode's precision and memory format."""

    train_macs: float  # per image: forward, input and weight gradients of every layer
    infer_macs: float  # per image: the forward
    train_rate: float  # mult-adds/s
    infer_rate: float

    @property
    def train_img_s(self) -> float:
        return self.train_rate / self.train_macs

    @property
    def infer_img_s(self) -> float:
        return self.infer_rate / self.infer_macs


def measure_ceiling(
    model: nn.Module,
    x: torch.Tensor,
    speed: SpeedSettings,
    device,
    rounds: int = 3,
    matmul: float | None = None,
) -> Ceiling:
    """The net's exact mult-adds and the best rate any of its own layers (each timed alone
    at its real shape, best of ``rounds``) or a 1024^3 matrix product reaches in this mode
    (module docstring). All of a step's mult-adds at the best rate seen anywhere: no step
    can be faster."""
    fns = _layer_fns(_layer_calls(model, speed.prepare_input(x)), speed, device)
    # ``matmul``: the product's rate when the caller measured it already (once per precision)
    train_rate = infer_rate = matmul or matmul_rate(device, speed.amp_dtype or speed.dtype)
    for train, infer, _, train_macs, infer_macs in fns:
        train(), infer()  # warm-up: kernel selection, allocation
        train_rate = max(train_rate, train_macs / min(_timed(train, device, 1) for _ in range(rounds)))
        infer_rate = max(infer_rate, infer_macs / min(_timed(infer, device, 1) for _ in range(rounds)))
    per_image = [sum(f[2] * f[k] for f in fns) / len(x) for k in (3, 4)]
    return Ceiling(*per_image, train_rate, infer_rate)


def default_batch_size(spec: ModelSpec, device: torch.device) -> int:
    if spec.family == "cifar":
        return 128
    return 256 if device.type == "cuda" else 16


class _Candidate:
    """One mode's model, optimizer and step on one synthetic batch."""

    def __init__(self, name: str, mode: str, device: torch.device, bs: int) -> None:
        torch.manual_seed(0)  # the same weights and batch for every mode
        spec = get_model_spec(name)
        self.mode, self.device = mode, device
        self.speed = _mode_settings(mode, device)
        model = self.model = create_model(name).to(device)
        self.macs = complexity(model, spec.input_size).macs
        if mode == "baseline":
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        else:
            opt = make_optimizer(model, OptimConfig(lr=0.01), device)
        self.step = TrainStep(model, opt, self.speed, device)
        self.x = torch.randn(bs, 3, *spec.input_size, device=device)
        self.y = torch.randint(0, model.fc.out_features, (bs,), device=device)
        self.train_s: list[float] = []
        self.infer_s: list[float] = []

    def train(self) -> None:
        self.step.model.train()
        self.step(self.x, self.y)

    @torch.inference_mode()
    def infer(self) -> None:
        self.step.model.eval()
        with self.speed.autocast(self.device):
            self.step.model(self.speed.prepare_input(self.x))

    def warm_up(self, seconds: float) -> None:
        """Discarded calls: the first (timed alone: compilation), then about one window
        of each kind, which sets how many calls a window holds."""
        t0 = time.perf_counter()
        self.train()
        _sync(self.device)
        self.first_step_s = time.perf_counter() - t0
        self.infer()  # an eval-mode graph compiles on its first call too
        self.train_steps = _steps_for(self.train, self.device, seconds)
        self.infer_steps = _steps_for(self.infer, self.device, seconds / 2)


def _steps_for(fn, device: torch.device, seconds: float) -> int:
    """Calls that fill about ``seconds`` (at least one), from a discarded timing run."""
    per_call = _timed(fn, device, 1)
    if per_call < seconds / 4:  # fast calls: time a longer stretch for a better estimate
        per_call = _timed(fn, device, max(1, math.ceil(seconds / 2 / per_call)))
    return max(1, round(seconds / per_call))


def _stats(xs: list[float]) -> tuple[float, float, float]:
    return statistics.median(xs), min(xs), max(xs)


def bench_model(
    name: str,
    device: torch.device,
    batch_size: int | None = None,
    modes: tuple[str, ...] = ("baseline", "reslearn"),
    repeat: int = DEFAULT_REPEAT,
    seconds: float = DEFAULT_SECONDS,
    ceilings: dict[str, Ceiling] | None = None,
) -> list[BenchRow]:
    """Rows for ``modes`` of one model, measured interleaved (module docstring). The first
    mode is the reference of the ratios (``baseline`` by default). ``ceilings``: mode ->
    its Ceiling, instead of measuring it."""
    if repeat < 1 or seconds <= 0:
        raise ValueError(f"repeat must be >= 1 and seconds > 0, got {repeat} and {seconds}")
    if len(set(modes)) != len(modes) or not modes:
        raise ValueError(f"modes must be distinct and non-empty, got {modes}")
    spec = get_model_spec(name)
    bs = batch_size or default_batch_size(spec, device)
    cands = [_Candidate(name, m, device, bs) for m in modes]
    for c in cands:
        c.warm_up(seconds)
    for r in range(repeat):
        order = cands if r % 2 == 0 else cands[::-1]
        for c in order:
            c.train_s.append(_timed(c.train, device, c.train_steps))
        for c in order:
            c.infer_s.append(_timed(c.infer, device, c.infer_steps))
    if ceilings is None:
        ceilings = measure_ceilings(cands, device)
    return [_row(name, device, repeat, c, cands[0], ceilings[c.mode]) for c in cands]


def measure_ceilings(cands: list[_Candidate], device: torch.device) -> dict[str, Ceiling]:
    """Each mode's ceiling; modes that share a precision share its matmul rate."""
    dtypes = {c.speed.amp_dtype or c.speed.dtype for c in cands}
    rates = {dt: matmul_rate(device, dt) for dt in dtypes}
    return {
        c.mode: measure_ceiling(
            c.model, c.x, c.speed, device, matmul=rates[c.speed.amp_dtype or c.speed.dtype]
        )
        for c in cands
    }


def _row(name: str, device, repeat: int, c: _Candidate, ref: _Candidate, ceiling: Ceiling) -> BenchRow:
    """One mode's row: rates and ratios to the reference mode (time ratio = speed ratio)."""
    bs = len(c.x)
    return BenchRow(
        name,
        c.mode,
        str(device),
        bs,
        c.speed.describe(),
        repeat,
        c.train_steps * statistics.median(c.train_s),
        c.first_step_s,
        *_stats([bs / t for t in c.train_s]),
        *_stats([bs / t for t in c.infer_s]),
        *_stats([a / b for a, b in zip(ref.train_s, c.train_s)]),
        *_stats([a / b for a, b in zip(ref.infer_s, c.infer_s)]),
        c.macs,
        ceiling.train_macs,
        ceiling.train_rate,
        ceiling.train_img_s,
        ceiling.infer_img_s,
    )


def run_bench(
    models=DEFAULT_MODELS,
    device: str = "auto",
    batch_size: int | None = None,
    log=print,
    modes: tuple[str, ...] = ("baseline", "reslearn"),
    repeat: int = DEFAULT_REPEAT,
    seconds: float = DEFAULT_SECONDS,
) -> list[BenchRow]:
    dev = select_device(device)
    for m in models:
        get_model_spec(m)  # fail early, with a clear ValueError, on an unknown name
    for m in modes:
        _mode_settings(m, dev)
    default = SpeedSettings.fast(dev)
    log(
        f"bench on {dev} ({torch.get_num_threads()} intra-op threads): {repeat} interleaved "
        f"rounds of {seconds:g} s training windows per mode, after a discarded warm-up; "
        f"the training default here: {default.describe()} ({default.reason})"
    )
    rows = []
    for m in models:
        rows += bench_model(m, dev, batch_size, tuple(modes), repeat, seconds)
    for r in rows:
        log(
            f"{r.model} {r.mode} ({r.settings}): {r.train_macs_per_image / 1e6:.1f} M mult-adds per "
            f"training image, best rate {r.peak_macs_s / 1e9:.1f} G mult-adds/s, "
            f"ceiling {r.ceiling_train_img_s:.0f} img/s"
        )
    return rows


def format_table(rows: list[BenchRow]) -> str:
    head = (
        f"{'model':<10}{'mode':<14}{'settings':<26}{'batch':>6}{'train img/s (min-max)':>24}"
        f"{'train x (min-max)':>21}{'infer x':>9}{'1st step s':>11}{'% ceiling':>10}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        img_s = _span(r.train_img_s, r.train_img_s_min, r.train_img_s_max, ".1f", ".0f")
        ratio = _span(r.train_ratio, r.train_ratio_min, r.train_ratio_max, ".2f", ".2f", "x")
        lines.append(
            f"{r.model:<10}{r.mode:<14}{r.settings:<26}{r.batch_size:>6}{img_s:>24}{ratio:>21}"
            f"{r.infer_ratio:>8.2f}x{r.first_step_s:>11.1f}{100 * r.train_fraction:>9.1f}%"
        )
    lines.append(
        "median over interleaved rounds (min-max). train x / infer x: the first mode's time over "
        "this mode's, per round. % ceiling: training img/s over (best mult-add rate of the net's "
        "own layers or a matrix product in this mode) / (mult-adds of a training image)."
    )
    return "\n".join(lines)


def _span(mid: float, lo: float, hi: float, f1: str, f2: str, unit: str = "") -> str:
    return f"{mid:{f1}}{unit} ({lo:{f2}}-{hi:{f2}})"


def write_json(rows: list[BenchRow], path: str) -> None:
    with open(path, "w") as f:
        json.dump([asdict(r) | {"train_fraction_of_ceiling": r.train_fraction} for r in rows], f, indent=2)
