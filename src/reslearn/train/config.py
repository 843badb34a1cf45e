"""Training configuration: one dataclass per concern, validated, saved with every run.

This module is the one source of every option: the command line (``reslearn train``)
is generated from these fields, ``--config FILE`` and ``--set section.field=value``
address them by name, and the resolved config is written into every run and checkpoint.
A field's docstring is its help text; a field with ``choices`` metadata is validated
against them and offered as those choices on the command line.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import json
import math
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..recipes import RECIPES
from .schedules import SCHEDULES


def _choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _positive(name: str, value: Any, allow_zero: bool = False) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(
            f"{name} must be a {'non-negative' if allow_zero else 'positive'} integer, got {value!r}"
        )


def _real(name: str, value: Any, allow_zero: bool = False) -> None:
    """A finite number > 0 (>= 0 with ``allow_zero``): nan and inf name themselves here,
    rather than passing a comparison and poisoning the run (issue 32)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")


def _count_or_fraction(name: str, value: Any) -> int | float:
    """A whole number of items (kept as an int) or a fraction in (0, 1)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(value, float) and value == 1.0:
        raise ValueError(
            f"{name} 1.0 is not a fraction in (0, 1) (it would hold out every image); "
            f"for a count of one image write 1"
        )
    if number and (0 < value < 1 or (value >= 0 and float(value).is_integer())):
        return value if 0 < value < 1 else int(value)
    raise ValueError(f"{name} must be a count (0, 1, 2, ...) or a fraction in (0, 1), got {value!r}")


def choices(default: Any, options: tuple | Callable[[], tuple]) -> Any:
    """A field whose value is one of ``options`` (validated; CLI choices); a function
    giving them reads a registry when asked (a schedule registered later counts)."""
    return field(default=default, metadata={"choices": options})


def count(default: int | None = None, zero: bool = False) -> Any:
    """A positive integer (a non-negative one with ``zero``); None where that is the default."""
    return field(default=default, metadata={"check": lambda n, v: _positive(n, v, allow_zero=zero)})


def real(default: float | None, zero: bool = False) -> Any:
    """A finite number > 0 (>= 0 with ``zero``); None where that is the default."""
    return field(default=default, metadata={"check": lambda n, v: _real(n, v, allow_zero=zero)})


def _options(f: dataclasses.Field) -> tuple | None:
    opts = f.metadata.get("choices")
    return tuple(opts()) if callable(opts) else opts


class _Section:
    """Validation shared by the sections: every ``choices``, ``count`` and ``real`` field is
    checked (a None default stays allowed), each error naming ``_label(field)``."""

    @staticmethod
    def _label(name: str) -> str:
        return name

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if "choices" in f.metadata:
                _choice(self._label(f.name), value, _options(f))
            if "check" in f.metadata and not (value is None and f.default is None):
                f.metadata["check"](self._label(f.name), value)


@dataclass
class ModelConfig(_Section):
    name: str = "resnet20"
    """A name from reslearn.list_models(), or cifar_resnet{6n+2} / cifar_plain{6n+2}."""
    shortcut: str | None = choices(None, (None, "A", "B", "C"))
    """None: the net's paper default (A for CIFAR nets, B for ImageNet nets)."""
    variant: str | None = choices(None, (None, "v1", "v1.5"))
    """None: "v1", the paper's stride placement (v1.5: on the bottleneck's 3x3)."""
    zero_init_residual: bool = False
    """Not in the paper (gamma=1 everywhere): start residual branches at zero."""
    init_mode: str = choices("fan_out", ("fan_out", "fan_in"))
    """He-normal init std sqrt(2/fan): fan_out (torchvision) or fan_in; the paper's [13] allows both."""
    init: str | None = None
    """Fine-tune: start from these weights (run, checkpoint, .safetensors export, a published net's
    name, or torchvision .pth)."""
    freeze_to: str = choices("none", ("none", "conv1", "layer1", "layer2", "layer3", "layer4"))
    """Fine-tune: freeze the stem and the stages up to this one (weights and BatchNorm statistics)."""
    init_partial: bool = False
    """Fine-tune: accept an init that leaves layers besides the classifier fresh (they are listed)."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"model name must be a non-empty string, got {self.name!r}")
        super().__post_init__()
        for key, on in (("freeze_to", self.freeze_to != "none"), ("init_partial", self.init_partial)):
            if on and not self.init:
                raise ValueError(
                    f"{key}={getattr(self, key)!r} applies to fine-tuning: it needs init (--init)"
                )


@dataclass
class DataConfig(_Section):
    data_dir: str = "./data/cifar10"
    """CIFAR: cifar-10-batches-py/, that folder itself, or a train/ test/ tree. ImageNet: train/ val/."""
    dataset: str = "auto"
    """A registered data set (cifar10, cifar100, imagenet, folder, or yours); auto: found from data_dir."""
    labels: str = choices("fine", ("fine", "coarse"))
    """CIFAR-100: its 100 fine classes or its 20 coarse superclasses."""
    val_split: float | None = None
    """Held out of the training images for validation: a count (paper: 5000) or a fraction (0.1); 0 = none;
    None = the data set's default (none; a folder without val/: 10%)."""
    holdout: str = choices("name-hash", ("name-hash", "seeded"))
    """A folder's hold-out: by a hash of each file's name (stable when images are added) or seeded (runs
    made before reslearn 0.1's issue 32 keep it)."""
    normalize: str = choices("pixel", ("pixel", "channel"))
    """pixel: the paper's per-pixel mean subtraction; channel: per-channel mean/std."""
    augment: bool = True
    """The recipe's augmentation (CIFAR: pad-4 crop + flip; ImageNet: scale, crop, flip, lighting)."""
    pad_fill: str = choices("black", ("black", "mean"))
    """CIFAR recipe: what the 4-pixel pad holds. black: zero pixels, padded before the mean is subtracted
    (torchvision's RandomCrop on raw images); mean: the mean, the images normalised first and then
    padded with the network's zero input (fb.resnet.torch). The paper does not say."""
    download: bool = True
    """Download the canonical CIFAR-10 archive when the data is absent."""
    loader: str = choices("auto", ("auto", "device", "stream", "dali"))
    """auto: device for CIFAR, stream for ImageNet; device: the uint8 set on the device; stream:
    DataLoader workers; dali: NVIDIA DALI (CUDA, ImageNet recipe)."""
    workers: int = count(0, zero=True)
    """DataLoader worker processes of the streaming loaders; 0 = one per CPU core."""
    class_index: str | None = None
    """ImageNet: a TSV of 'index wnid name' mapping folders to the standard output indices."""
    image_size: int | None = count()
    """Training crop; None = the net's (32 CIFAR, 224 ImageNet). ImageNet scales [256, 480] with it."""
    lighting: float = real(0.1, zero=True)
    """ImageNet: std of AlexNet's PCA lighting noise (paper: 0.1); 0 = off."""
    skip_bad_images: bool = False
    """Count, log and skip unreadable images instead of stopping with the file's name."""

    def __post_init__(self) -> None:
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ValueError(f"dataset must be a data set's name or auto, got {self.dataset!r}")
        if self.val_split is not None:
            self.val_split = _count_or_fraction("val_split", self.val_split)
        super().__post_init__()


@dataclass
class OptimConfig(_Section):
    recipe: str = choices("auto", lambda: ("auto", *RECIPES))
    """auto: the data set's (Sections 4.2, 3.4); a CIFAR net takes the cifar recipe on any data."""
    batch_size: int | None = count()
    """Global mini-batch; None = the recipe's (CIFAR 128 on two GPUs of 64; ImageNet 256)."""
    lr: float = real(0.1)
    """Base learning rate (paper: 0.1)."""
    momentum: float = 0.9
    """SGD momentum (paper: 0.9)."""
    weight_decay: float = real(1e-4, zero=True)
    """L2 weight decay (paper: 0.0001)."""
    norm_weight_decay: float | None = real(None, zero=True)
    """Weight decay of BN weights/biases and of all biases; None = weight_decay, as the paper (Caffe)."""
    head_lr: float | None = real(None)
    """Fine-tune: the base lr of the layers --init replaced (the new classifier); None = lr."""
    iterations: int | None = count()
    """Total iterations; None = the recipe's (CIFAR 64k; ImageNet at most 60e4)."""
    epochs: int | None = count()
    """Alternative to iterations: this many passes over the training split."""
    schedule: str = choices("auto", lambda: ("auto", *SCHEDULES))
    """auto: the recipe's (CIFAR milestones; ImageNet plateau); step: /10 every step_epochs (90 epochs)."""
    milestones: tuple[float, ...] = (0.5, 0.75)
    """Fractions of the run at which lr is divided by 10 (paper: 32k and 48k of 64k)."""
    plateau_patience: int = count(3)
    """plateau: evaluations without an improvement of the held-out error before lr /10."""
    plateau_threshold: float = real(0.1, zero=True)
    """plateau: an improvement is a drop of the held-out top-1 error by more than this (points)."""
    step_epochs: int = count(30)
    """step: epochs between divisions of lr by 10 (torchvision's reference recipe)."""
    warmup: str = choices("auto", ("auto", "on", "off"))
    """auto: lr 0.01 until training error < 80% for nets of 110+ layers, as the paper; on; off."""
    warmup_lr: float = real(0.01)
    """Learning rate while warming up (paper: 0.01)."""
    warmup_until_err: float = real(80.0, zero=True)  # 0: warm up to the first drop
    """Warm-up ends once the training error (percent) falls below this."""
    warmup_check_every: int = count(20)
    """Iterations per training-error window while warming up (a host sync per window)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.iterations is not None and self.epochs is not None:
            raise ValueError(
                f"set iterations or epochs, not both (got iterations={self.iterations}, epochs={self.epochs})"
            )
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        self.milestones = tuple(float(m) for m in self.milestones)
        if any(not 0 < m < 1 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"milestones must be increasing fractions in (0, 1), got {self.milestones}")


@dataclass
class RunConfig(_Section):
    out: str | None = None
    """Run directory; None: runs/<model>-s<seed>-<time>."""
    seed: int = 0
    """Seeds the init, the data order and the augmentation."""
    device: str = "auto"
    """auto (cuda when present), cpu, cuda, cuda:N."""
    eval_every: int = count(0, zero=True)
    """Iterations between evaluations; 0 = one epoch."""
    checkpoint_every: int = count(0, zero=True)
    """Iterations between checkpoints (RUN_DIR/last.pt); 0 = at every evaluation."""
    eval_batch_size: int | None = count()
    """Images per evaluation batch; None = the recipe's (CIFAR 1000; ImageNet 250, also its most)."""
    channels_last: bool | None = None
    """None (auto): the device's fast default (see docs/performance.md)."""
    amp: str = choices("auto", ("auto", "bf16", "off"))
    """auto: bf16 autocast where a probe measures bf16 faster than fp32 here, else fp32; bf16; off."""
    dtype: str = choices("float32", ("float32", "float64"))
    """Weights and activations; float64 (slow, not the paper's): the same numbers on every CPU kind."""
    compile: bool = False
    """torch.compile the model (inductor)."""
    nan_policy: str = choices("stop", ("stop", "skip-batch"))
    """A non-finite loss: stop (keep the last good checkpoint) or skip-batch (no update; counted)."""
    sync_bn: bool = False
    """Several processes: BN statistics over the global batch; default per device, as the paper's GPUs."""
    bn_splits: int = count(1)
    """Training BN over each of this many equal slices of a process's batch, as that many GPUs would
    (the paper: CIFAR's 128 on two GPUs, 64 each); 1: over the whole batch (one process: all 128)."""
    progress: str = choices("auto", ("auto", "bar", "log", "none"))
    """auto: a bar on a terminal, log lines otherwise; bar; log; none."""
    tensorboard: bool = True
    """Also log to TensorBoard when it is installed."""
    threads: int = count(0, zero=True)
    """CPU threads; 0 = auto: OMP_NUM_THREADS if set, else a fair share of the cores per job."""

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", str(self.device)):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        super().__post_init__()
        if self.sync_bn and self.bn_splits > 1:
            raise ValueError(f"sync_bn (BN over the global batch) and bn_splits={self.bn_splits} contradict")
        if self.dtype == "float64" and self.amp == "bf16":
            raise ValueError("amp 'bf16' does not go with dtype 'float64' (use amp 'off' or 'auto')")


@dataclass
class JobOptions(_Section):
    """The numeric options of ``eval``, ``predict`` and ``bench``, checked
    by the same rules as a training config (one place for every range; issue 19). Each
    refusal names the flag and the value."""

    batch_size: int | None = count()
    workers: int = count(0, zero=True)
    threads: int = count(0, zero=True)
    top_k: int = count(5)
    repeat: int = count(5)
    seconds: float = real(4.0)

    @staticmethod
    def _label(name: str) -> str:
        return _flag(name)

    @classmethod
    def check(cls, namespace) -> None:
        """Validate the options of a parsed command line that has them."""
        names = [f.name for f in dataclasses.fields(cls) if hasattr(namespace, f.name)]
        cls(**{n: getattr(namespace, n) for n in names})


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


SECTIONS: dict[str, type] = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig, "run": RunConfig}


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))  # tuples -> lists: plain types

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        unknown = set(d) - set(SECTIONS)
        if unknown:
            raise ValueError(f"unknown config sections: {sorted(unknown)} (known: {list(SECTIONS)})")
        parts = {}
        for name, kind in SECTIONS.items():
            values = dict(d.get(name) or {})
            names = {f.name for f in dataclasses.fields(kind)}
            bad = set(values) - names
            if bad:
                raise ValueError(f"unknown {name} keys: {sorted(bad)} (known: {sorted(names)})")
            if "milestones" in values:
                values["milestones"] = tuple(values["milestones"])
            if name == "optim" and values.get("recipe") == "paper":
                values["recipe"] = "cifar"  # configs before the ImageNet recipe said "paper"
            parts[name] = kind(**values)
        return cls(**parts)

    def replace(self, overrides: dict[str, Any]) -> TrainConfig:
        """A copy with ``{"section.field": value}`` applied, each section re-validated.

        Setting ``optim.epochs`` clears ``optim.iterations`` (and the reverse) unless both
        are given, so that either one alone chooses the run length.
        """
        d = self.to_dict()
        keys = set(overrides)
        for key, value in overrides.items():
            section, name = split_key(key)
            d[section][name] = list(value) if isinstance(value, tuple) else value
        for a, b in (("optim.epochs", "optim.iterations"), ("optim.iterations", "optim.epochs")):
            if a in keys and b not in keys and overrides[a] is not None:
                d["optim"][b.split(".")[1]] = None
        return TrainConfig.from_dict(d)


# ---------------------------------------------------------------- fields as data
@dataclass(frozen=True)
class FieldInfo:
    section: str
    name: str
    type: Any  # the resolved annotation
    default: Any
    help: str
    choices: tuple | None

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"


@functools.cache
def _docstrings(kind: type) -> dict[str, str]:
    """Field docstrings (the string literal under each field) from the class source."""
    try:
        tree = ast.parse(inspect.getsource(kind))
    except (OSError, TypeError):  # no source (frozen app): no help text, everything works
        return {}
    body = tree.body[0].body
    out = {}
    for node, nxt in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            out[node.target.id] = " ".join(nxt.value.value.split())
    return out


def config_fields() -> list[FieldInfo]:
    """Every field of every section, in declaration order."""
    out = []
    for section, kind in SECTIONS.items():
        hints = typing.get_type_hints(kind)
        docs = _docstrings(kind)
        for f in dataclasses.fields(kind):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            out.append(FieldInfo(section, f.name, hints[f.name], default, docs.get(f.name, ""), _options(f)))
    return out


def split_key(key: str) -> tuple[str, str]:
    """ "optim.weight_decay" -> ("optim", "weight_decay"), checked against the sections."""
    section, _, name = key.partition(".")
    if section not in SECTIONS or not name:
        raise ValueError(f"config key {key!r} must be section.field with section one of {list(SECTIONS)}")
    names = [f.name for f in dataclasses.fields(SECTIONS[section])]
    if name not in names:
        raise ValueError(f"unknown config key {key!r}; {section} has: {', '.join(names)}")
    return section, name


def _info(key: str) -> FieldInfo:
    split_key(key)
    return next(f for f in config_fields() if f.key == key)


def parse_value(key: str, text: str) -> Any:
    """A command-line string for ``key`` as its field's type ("none" for optional fields)."""
    t = _info(key).type
    args = typing.get_args(t)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), t) if optional else t
    low = text.strip().lower()
    if optional and low in ("none", "null", "auto", ""):
        return None
    try:
        if base is bool:
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if base is int:
            return int(text)
        if base is float:
            return float(text)
        if typing.get_origin(base) is tuple:
            return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"{key}: {text!r} is not a valid {getattr(base, '__name__', base)}") from None
    return text


def coerce_value(key: str, value: Any) -> Any:
    """A value from a config file as its field's type: a string is parsed as on the command
    line ("0.5,0.75" for milestones), an integer is a float where a float is wanted, a list
    a tuple; anything else of the wrong type is an error naming the field, the value and
    the type wanted."""
    if isinstance(value, str):
        return parse_value(key, value)
    t = _info(key).type
    args = typing.get_args(t)
    if value is None and type(None) in args:
        return None
    base = next((a for a in args if a is not type(None)), t) if args else t

    def number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if base is float and number(value):
        return float(value)
    if base in (int, bool) and type(value) is base:
        return value
    if typing.get_origin(base) is tuple and isinstance(value, (list, tuple)) and all(map(number, value)):
        return tuple(float(v) for v in value)
    wanted = {float: "a number", int: "an integer", bool: "true or false", str: "a string"}
    raise ValueError(f"{key} must be {wanted.get(base, 'a list of numbers')}, got {value!r}")


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["optim.weight_decay=5e-4", ...]`` -> ``{"optim.weight_decay": 0.0005, ...}``."""
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"--set takes section.field=value, got {item!r}")
        out[key.strip()] = parse_value(key.strip(), value)
    return out


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A config file (JSON, TOML or YAML) with the sections of config.json, as
    ``{"section.field": value}``. A run's own config.json is a valid file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"config file {str(path)!r} does not exist")
    text = p.read_text()
    suffix = p.suffix.lower()
    if suffix not in (".json", ".toml", ".yaml", ".yml"):
        raise ValueError(f"config file {str(path)!r}: use .json, .toml, .yaml or .yml")
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            msg = f"{str(path)!r}: YAML needs PyYAML (pip install pyyaml); or use JSON/TOML"
            raise ValueError(msg) from None
    try:
        if suffix == ".json":
            d = json.loads(text)
        elif suffix == ".toml":
            import tomllib

            d = tomllib.loads(text)
        else:
            d = yaml.safe_load(text)
    except Exception as e:  # each parser's own error: it gives the line
        where = f", line {e.lineno} column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        msg = e.msg if isinstance(e, json.JSONDecodeError) else str(e).splitlines()[0]
        raise ValueError(f"config file {str(path)!r}{where} is not valid {suffix[1:]}: {msg}") from None
    if not isinstance(d, dict):
        raise ValueError(f"config file {str(path)!r} must hold a table of sections {list(SECTIONS)}")
    flat = {}
    for section, values in d.items():
        if section not in SECTIONS:
            raise ValueError(
                f"config file {str(path)!r}: unknown section {section!r} (known: {list(SECTIONS)})"
            )
        if not isinstance(values, dict):
            raise ValueError(
                f"config file {str(path)!r}: section {section!r} must be a table of fields, got {values!r}"
            )
        for name, value in values.items():
            key = f"{section}.{name}"
            split_key(key)
            try:
                flat[key] = coerce_value(key, value)
            except ValueError as e:
                raise ValueError(f"config file {str(path)!r}: {e}") from None
    return flat


# What may change when a run is resumed: where and how it runs and reports, where its
# data now lives, and a longer run. Anything else would silently change the experiment.
RESUME_SAFE = {
    "run.device",
    "run.threads",
    "run.progress",
    "run.eval_every",
    "run.checkpoint_every",
    "run.eval_batch_size",
    "run.tensorboard",
    "run.compile",
    "data.data_dir",
    "data.workers",
    "data.skip_bad_images",
    "run.nan_policy",
    "optim.iterations",
}


def apply_layers(cfg: TrainConfig, layers: list[dict[str, Any]]) -> TrainConfig:
    """``cfg`` with each layer of overrides applied in turn (config file, --set, flags)."""
    for layer in layers:
        if layer:
            cfg = cfg.replace(layer)
    return cfg


def diff(a: TrainConfig, b: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """{"section.field": (a's value, b's value)} for every field that differs."""
    da, db = a.to_dict(), b.to_dict()
    return {f"{s}.{k}": (da[s][k], db[s][k]) for s in da for k in da[s] if da[s][k] != db[s][k]}


def resume_config(
    saved: TrainConfig, layers: list[dict[str, Any]], flag_names: dict[str, str] | None = None
) -> TrainConfig:
    """The config of a resumed run: ``saved`` with the overrides applied where safe.

    A value equal to the saved one is fine; a change of a field outside
    :data:`RESUME_SAFE` (or a shorter ``iterations``) is refused, naming the flag:
    nothing given on the command line is silently ignored.
    """
    flag_names = flag_names or {}
    new = apply_layers(saved, layers)
    for key, (old, value) in diff(saved, new).items():
        if key == "run.out":
            continue  # the run directory is the one being resumed
        flag = flag_names.get(key, f"--set {key}")
        if key not in RESUME_SAFE:
            raise ValueError(
                f"{flag} cannot change on --resume (the run has {key}={old!r}, asked {value!r}): "
                f"it would change the experiment; start a new run instead. Safe to change: "
                f"{', '.join(sorted(RESUME_SAFE))}"
            )
        if key == "optim.iterations" and (old is None or value is None or value < old):
            raise ValueError(
                f"{flag} on --resume may only lengthen the run (it has {key}={old!r}, asked {value!r})"
            )
    return new
