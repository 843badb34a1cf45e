"""How a step runs on a device: the device choice and the fast-path settings.

Shared by training, evaluation and ``reslearn bench`` (none of them owns it).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch


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


def cpu_has_amx_bf16() -> bool:
    """True when the CPU multiplies bf16 in hardware (Intel AMX), where bf16 autocast pays
    (about 1.6x over fp32 channels_last for ResNet-20 here; docs/performance.md).
    Without AMX, bf16 convolutions are emulated or slower, so fp32 stays the default."""
    init_amx = getattr(torch._C._cpu, "_init_amx", None)  # asks the OS for AMX state
    if init_amx is not None:
        try:
            if init_amx():
                return True
        except RuntimeError:
            pass
    try:
        with open("/proc/cpuinfo") as f:
            return "amx_bf16" in f.read()
    except OSError:
        return False


@dataclass(frozen=True)
class SpeedSettings:
    """How a step runs. ``baseline()`` is eager NCHW fp32; ``fast()`` the engine default."""

    channels_last: bool = False
    amp_dtype: torch.dtype | None = None
    compile: bool = False

    @staticmethod
    def baseline() -> SpeedSettings:
        return SpeedSettings()

    @staticmethod
    def fast(device: torch.device) -> SpeedSettings:
        # Measured in docs/performance.md: channels_last pays on CPU and GPU; bf16
        # autocast pays on CUDA and on CPUs with AMX.
        bf16 = device.type == "cuda" or (device.type == "cpu" and cpu_has_amx_bf16())
        return SpeedSettings(channels_last=True, amp_dtype=torch.bfloat16 if bf16 else None)

    @staticmethod
    def from_run(run, device: torch.device) -> SpeedSettings:
        """From a RunConfig: its ``channels_last`` / ``amp`` / ``compile``, auto resolved."""
        fast = SpeedSettings.fast(device)
        cl = fast.channels_last if run.channels_last is None else run.channels_last
        amp = {"auto": fast.amp_dtype, "bf16": torch.bfloat16, "off": None}[run.amp]
        return SpeedSettings(channels_last=cl, amp_dtype=amp, compile=run.compile)

    def describe(self) -> str:
        amp = "bf16" if self.amp_dtype == torch.bfloat16 else "fp32"
        fmt = "channels_last" if self.channels_last else "NCHW"
        return f"{fmt}, {amp}{', compiled' if self.compile else ''}"

    def autocast(self, device: torch.device):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.amp_dtype)

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def for_evaluation(self) -> SpeedSettings:
        """Reported errors are measured in fp32 (bf16 only speeds up training steps)."""
        return SpeedSettings(channels_last=self.channels_last)
