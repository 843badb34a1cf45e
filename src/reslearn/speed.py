"""How a step runs on a device: the device choice and the fast-path settings.

Shared by training, evaluation and ``reslearn bench`` (none of them owns it).
"""

from __future__ import annotations

import contextlib
import functools
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .files import atomic_write_text, cache_dir


def select_device(name: str = "auto") -> torch.device:
    """ "auto": CUDA when present, else CPU. An unavailable device is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available here")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return dev


# ---------------------------------------------------------------- what decides the kernels
# The CPU flags oneDNN, MKL and torch's own kernels dispatch on (x86-64). Two CPUs that agree
# on these, on torch's CPU capability, the L2 size (oneDNN's blocking) and the thread count
# run the same kernels in the same order; the CPU's model name decides nothing ("AMD EPYC"
# names chips with and without AVX-512).
DISPATCH_FLAGS = (
    "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni",
    "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8",
)  # fmt: skip


@functools.cache  # a process's CPU does not change; the file is read once
def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _l2_kib() -> int | None:
    try:
        size = Path("/sys/devices/system/cpu/cpu0/cache/index2/size").read_text().strip()
    except OSError:
        return None
    return int(size[:-1]) * (1024 if size.endswith("M") else 1) if size[:-1].isdigit() else None


def kernel_key(threads: int | None = None) -> str:
    """A string that names the CPU kernels a step runs: torch's version and CPU capability,
    the dispatch flags present, the L2 size and the intra-op thread count. Equal keys give
    bit-identical fp32 results (measured run to run on each kind); different keys differ in
    the last bits, which SGD amplifies (tests/regression)."""
    flags = _cpu_flags()
    isa = "+".join(f for f in DISPATCH_FLAGS if f in flags) or "none"
    cap = torch.backends.cpu.get_cpu_capability()
    n = torch.get_num_threads() if threads is None else threads
    return f"torch {torch.__version__.split('+')[0]} {cap} {isa} L2={_l2_kib()}K threads={n}"


def ran_on(device: torch.device, speed: SpeedSettings) -> str:
    """How this process trains, in one line for each metrics row: a study that spans sessions
    may continue on another machine (another CPU kind, bf16 there and fp32 here), and its report
    names each stretch's machine. CPU: the kernel key (torch, capability, flags, L2, threads);
    CUDA: the GPU's name."""
    where = kernel_key() if device.type == "cpu" else str(device)
    if device.type == "cuda":
        where += f" {torch.cuda.get_device_name(device)}, torch {torch.__version__.split('+')[0]}"
    return f"{device.type}: {speed.describe()}; {where}"


# ---------------------------------------------------------------- the bf16 probe
BF16_MIN_SPEEDUP = 1.15
"""bf16 autocast is the default where a bf16 training-shaped convolution step runs at least
this much faster than fp32 (AMX: about 2x; AVX512-BF16: about 1.5x; emulated: about 0.1x)."""


@dataclass(frozen=True)
class Bf16Probe:
    """The measured speed of bf16 against fp32 on this CPU, and the decision it gives."""

    speedup: float  # fp32 time / bf16 time of the probe step (median of interleaved rounds)
    cached: bool = False

    @property
    def use_bf16(self) -> bool:
        return self.speedup >= BF16_MIN_SPEEDUP

    def describe(self) -> str:
        verdict = "bf16" if self.use_bf16 else "fp32"
        how = "cached probe" if self.cached else "probe"
        return f"{how}: a bf16 conv step runs {self.speedup:.2f}x fp32's speed here -> {verdict}"


def _probe_step(dtype: torch.dtype | None, rounds: int = 5) -> list[float]:
    """Seconds of a 3x3 convolution's training step (forward, input and weight gradients),
    64 channels at 16x16, batch 32, channels_last (a CIFAR net's widest layer, an ImageNet
    net's narrowest), in fp32 or under bf16 autocast: about 10 ms on one core. Measured on
    an AMX Xeon: 2.7x here against 2x for a whole ResNet-20 step; 16-channel layers gain
    less (1.2x), and the whole net's gain lies between."""
    g = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
    x = torch.randn(32, 64, 16, 16, generator=g).to(memory_format=torch.channels_last)
    x.requires_grad_(True)
    ctx = torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext()

    def step() -> None:
        with ctx:
            y = conv(x)
        y.float().sum().backward()

    step()  # oneDNN builds its kernels on the first calls
    step()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def measure_bf16_speedup(rounds: int = 7) -> float:
    """fp32 time / bf16 time on one thread (what the ISA does, not how busy the other
    cores are: several threads on a loaded machine measure the scheduler), median over
    rounds of the two probes; about 0.15 s in all with bf16 hardware, 2 s without."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fp32, bf16 = _probe_step(None, rounds), _probe_step(torch.bfloat16, rounds)
    finally:
        torch.set_num_threads(threads)
    return statistics.median(a / b for a, b in zip(fp32, bf16))


_PROBES: dict[str, float] = {}  # kernel key -> speed-up measured by this process


def bf16_probe() -> Bf16Probe:
    """The probe for this machine's kernels (``kernel_key``): from this process's memory,
    else from the cache (``cache_dir()/bf16-probe.json``), else measured and cached there.
    An unwritable cache only costs the probe's time next time."""
    key = kernel_key(threads=1)
    if key in _PROBES:
        return Bf16Probe(_PROBES[key], cached=True)
    path = cache_dir() / "bf16-probe.json"
    try:
        cache = json.loads(path.read_text())
        speedup = float(cache[key])
        _PROBES[key] = speedup
        return Bf16Probe(speedup, cached=True)
    except (OSError, ValueError, KeyError, TypeError):
        cache = None
    probe = Bf16Probe(measure_bf16_speedup())
    _PROBES[key] = probe.speedup
    try:
        cache = cache if isinstance(cache, dict) else {}
        cache[key] = probe.speedup
        atomic_write_text(path, json.dumps(cache, indent=1) + "\n")
    except OSError:
        pass
    return probe


def default_amp(device: torch.device) -> tuple[torch.dtype | None, str]:
    """bf16 autocast where this device computes bf16 faster than fp32, with the reason."""
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return (torch.bfloat16 if ok else None), ("CUDA bf16" if ok else "no CUDA bf16")
    if device.type != "cpu":
        return None, f"fp32 on {device.type}"
    probe = bf16_probe()
    return (torch.bfloat16 if probe.use_bf16 else None), probe.describe()


@dataclass(frozen=True)
class SpeedSettings:
    """How a step runs. ``baseline()`` is eager NCHW fp32; ``fast()`` the engine default."""

    channels_last: bool = False
    amp_dtype: torch.dtype | None = None
    compile: bool = False
    dtype: torch.dtype = torch.float32  # of weights and activations (float64: portable checks)
    reason: str = field(default="", compare=False)  # why amp is what it is, for the run header

    @staticmethod
    def baseline() -> SpeedSettings:
        return SpeedSettings()

    @staticmethod
    def fast(device: torch.device) -> SpeedSettings:
        # Measured in docs/performance.md: channels_last pays on CPU and GPU; bf16 autocast
        # where the device does bf16 in hardware (CUDA; AMX or AVX512-BF16 CPUs), which a
        # probe measures rather than a flag name (default_amp).
        amp, reason = default_amp(device)
        return SpeedSettings(channels_last=True, amp_dtype=amp, reason=reason)

    @staticmethod
    def from_run(run, device: torch.device) -> SpeedSettings:
        """From a RunConfig: its ``channels_last`` / ``amp`` / ``compile`` / ``dtype``, auto
        resolved (the bf16 probe runs only for ``amp`` auto in float32)."""
        dtype = torch.float64 if run.dtype == "float64" else torch.float32
        cl = True if run.channels_last is None else run.channels_last
        if run.amp == "auto" and dtype == torch.float32:
            amp, reason = default_amp(device)
        else:
            amp = torch.bfloat16 if run.amp == "bf16" else None
            reason = f"--amp {run.amp}" if run.amp != "auto" else "float64"
        return SpeedSettings(cl, amp, run.compile, dtype, reason)

    def describe(self) -> str:
        amp = "bf16" if self.amp_dtype == torch.bfloat16 else str(self.dtype).replace("torch.float", "fp")
        fmt = "channels_last" if self.channels_last else "NCHW"
        return f"{fmt}, {amp}{', compiled' if self.compile else ''}"

    def autocast(self, device: torch.device):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.amp_dtype)

    @property
    def memory_format(self) -> torch.memory_format:
        """The one place the layout is chosen: nets and inputs both take it from here."""
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """The net in the memory format (in place, as ``Module.to``)."""
        return model.to(memory_format=self.memory_format) if self.channels_last else model

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != self.dtype and x.is_floating_point():
            x = x.to(self.dtype)
        return x.contiguous(memory_format=self.memory_format) if self.channels_last else x

    def for_evaluation(self) -> SpeedSettings:
        """Reported errors are measured in fp32 (bf16 only speeds up training steps)."""
        return SpeedSettings(channels_last=self.channels_last, dtype=self.dtype)
