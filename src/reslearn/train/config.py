"""Training configuration: one dataclass per concern, validated, saved with every run."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any


def _choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _positive(name: str, value: Any, allow_zero: bool = False) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(
            f"{name} must be a {'non-negative' if allow_zero else 'positive'} integer, got {value!r}"
        )


@dataclass
class ModelConfig:
    name: str = "resnet20"
    """A name from reslearn.list_models() (or any CIFAR resnet{6n+2} / plain{6n+2})."""
    shortcut: str | None = None
    """None: the net's paper default (A for CIFAR nets, B for ImageNet nets)."""
    variant: str | None = None
    """None: "v1", the paper's stride placement."""
    zero_init_residual: bool = False
    """Not in the paper (gamma=1 everywhere); start residual branches at zero."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"model name must be a non-empty string, got {self.name!r}")
        if self.shortcut is not None:
            _choice("shortcut", self.shortcut, ("A", "B", "C"))
        if self.variant is not None:
            _choice("variant", self.variant, ("v1", "v1.5"))

    def depth(self) -> int:
        m = re.search(r"(\d+)$", self.name)
        return int(m.group(1)) if m else 0


@dataclass
class DataConfig:
    data_dir: str = "./data/cifar10"
    """Folder holding cifar-10-batches-py/, that folder itself, or a train/ test/ tree."""
    val_split: int = 0
    """Hold out this many training images for validation (paper: 5000); 0 = train on all."""
    normalize: str = "pixel"
    """"pixel": the paper's per-pixel mean subtraction; "channel": per-channel mean/std."""
    augment: bool = True
    """The paper's pad-4 random crop + horizontal flip; False trains on the plain images."""
    download: bool = True
    """Download the canonical archive when the data is absent."""

    def __post_init__(self) -> None:
        _positive("val_split", self.val_split, allow_zero=True)
        _choice("normalize", self.normalize, ("pixel", "channel"))


@dataclass
class OptimConfig:
    recipe: str = "paper"
    """The paper's CIFAR recipe (Section 4.2). The fields below are its numbers."""
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    iterations: int | None = 64_000
    """Total iterations (paper: 64k). The milestones scale with it."""
    epochs: int | None = None
    """Alternative to iterations: this many passes over the training split."""
    milestones: tuple[float, ...] = (0.5, 0.75)
    """Fractions of the run at which lr is divided by 10 (paper: 32k and 48k of 64k)."""
    warmup: str = "auto"
    """"auto": warm up for nets of 110+ layers, as the paper; "on"; "off"."""
    warmup_lr: float = 0.01
    warmup_until_err: float = 80.0
    """Warm-up ends once the training error (percent) falls below this."""
    warmup_check_every: int = 20
    """Iterations per training-error window while warming up (a host sync per window)."""

    def __post_init__(self) -> None:
        _choice("recipe", self.recipe, ("paper",))
        _positive("batch_size", self.batch_size)
        if self.epochs is not None:
            _positive("epochs", self.epochs)
        if self.iterations is not None:
            _positive("iterations", self.iterations)
        if self.iterations is None and self.epochs is None:
            raise ValueError("set iterations or epochs")
        for k in ("lr", "warmup_lr"):
            if not getattr(self, k) > 0:
                raise ValueError(f"{k} must be > 0, got {getattr(self, k)!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        self.milestones = tuple(float(m) for m in self.milestones)
        if any(not 0 < m < 1 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"milestones must be increasing fractions in (0, 1), got {self.milestones}")
        _choice("warmup", self.warmup, ("auto", "on", "off"))
        _positive("warmup_check_every", self.warmup_check_every)


@dataclass
class RunConfig:
    out: str | None = None
    """Run directory; None: runs/<model>-<timestamp>."""
    seed: int = 0
    device: str = "auto"
    """auto (cuda when present), cpu, cuda, cuda:N."""
    eval_every: int = 0
    """Iterations between evaluations; 0 = one epoch."""
    checkpoint_every: int = 0
    """Iterations between checkpoints (RUN_DIR/last.pt); 0 = at every evaluation."""
    eval_batch_size: int = 1000
    channels_last: bool | None = None
    """None: the device's fast default (see docs/performance.md)."""
    amp: str = "auto"
    """"auto": the device's fast default; "bf16": bfloat16 autocast; "off": fp32."""
    compile: bool = False
    """torch.compile the model (inductor)."""
    progress: str = "auto"
    """"auto": a bar on a terminal, log lines otherwise; "bar"; "log"; "none"."""
    tensorboard: bool = True
    """Also log to TensorBoard when it is installed."""

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", str(self.device)):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        _positive("eval_every", self.eval_every, allow_zero=True)
        _positive("checkpoint_every", self.checkpoint_every, allow_zero=True)
        _positive("eval_batch_size", self.eval_batch_size)
        _choice("amp", self.amp, ("auto", "bf16", "off"))
        _choice("progress", self.progress, ("auto", "bar", "log", "none"))


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        def build(kind, values):
            names = {f.name for f in dataclasses.fields(kind)}
            unknown = set(values) - names
            if unknown:
                raise ValueError(f"unknown {kind.__name__} keys: {sorted(unknown)}")
            return kind(**values)

        o = dict(d.get("optim", {}))
        if "milestones" in o:
            o["milestones"] = tuple(o["milestones"])
        return cls(
            build(ModelConfig, d.get("model", {})),
            build(DataConfig, d.get("data", {})),
            build(OptimConfig, o),
            build(RunConfig, d.get("run", {})),
        )
