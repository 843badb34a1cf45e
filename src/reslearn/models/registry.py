"""Model registry: every named net carries a :class:`ModelSpec` (timm-style).

A leaf module: it imports nothing from the zoo. The zoo registers its constructors
here (``register_model``) and, for the open-ended CIFAR family, a name pattern
(``register_pattern``). Everything that needs to know a net's depth, family or
plain-ness asks its spec (``get_model_spec``), never the string.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

FAMILIES = ("cifar", "imagenet")
BLOCKS = ("basic", "bottleneck")


@dataclass(frozen=True)
class ModelSpec:
    """What a named network is, as data (stored in every checkpoint as a plain dict)."""

    name: str
    family: str
    """"cifar" (Section 4.2: 3x3 stem, widths 16/32/64) or "imagenet" (Table 1)."""
    depth: int
    """Weighted layers: convolutions on the main path plus the fc (the paper's count)."""
    residual: bool
    """False: the plain counterpart (same layers, no shortcut)."""
    block: str
    """"basic" ([3x3, 3x3]) or "bottleneck" ([1x1, 3x3, 1x1])."""
    layers: tuple[int, ...]
    """Blocks per stage."""
    widths: tuple[int, ...]
    """Base width of each stage."""
    input_size: tuple[int, int]
    """The paper's input (H, W): 32x32 for CIFAR, 224x224 for ImageNet."""
    num_classes: int
    """The paper's output size: 10 for CIFAR-10, 1000 for ImageNet."""
    default_shortcut: str | None
    """The paper's shortcut: A for CIFAR nets, B for ImageNet nets, None for plain nets."""

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")
        if self.block not in BLOCKS:
            raise ValueError(f"block must be one of {BLOCKS}, got {self.block!r}")
        if self.residual == (self.default_shortcut is None):
            raise ValueError(f"{self.name}: residual nets need a default shortcut, plain nets none")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown ModelSpec keys: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


Builder = Callable[..., nn.Module]  # builder(spec, **options) -> nn.Module
Resolver = Callable[[str, re.Match], ModelSpec]

_SPECS: dict[str, ModelSpec] = {}
_BUILDERS: dict[str, Builder] = {}
_LISTED: list[str] = []  # list_models(): the paper's names, in a stable order
_PATTERNS: list[tuple[re.Pattern, Resolver, Builder]] = []
_HINTS: list[Callable[[str], str | None]] = []


def register_model(spec: ModelSpec, builder: Builder, *, listed: bool = True) -> None:
    """Register ``spec.name``; ``builder(spec, **options)`` builds it."""
    if spec.name in _SPECS:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _SPECS[spec.name] = spec
    _BUILDERS[spec.name] = builder
    if listed:
        _LISTED.append(spec.name)


def register_pattern(pattern: str, resolver: Resolver, builder: Builder) -> None:
    """Names matching ``pattern`` (a family with open-ended depths) resolve to a spec."""
    _PATTERNS.append((re.compile(pattern), resolver, builder))


def register_hint(hint: Callable[[str], str | None]) -> None:
    """A function giving an extra sentence for an unknown name (or None)."""
    _HINTS.append(hint)


def _resolve(name: str) -> tuple[ModelSpec, Builder]:
    if not isinstance(name, str):
        raise ValueError(f"model name must be a string, got {name!r}")
    if name in _SPECS:
        return _SPECS[name], _BUILDERS[name]
    for pattern, resolver, builder in _PATTERNS:
        m = pattern.fullmatch(name)
        if m is not None:
            return resolver(name, m), builder
    close = difflib.get_close_matches(name, list(_SPECS), n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    extra = "".join(f" {h}" for h in (fn(name) for fn in _HINTS) if h)
    raise ValueError(f"unknown model {name!r}{hint}{extra} (see reslearn.list_models())")


def get_model_spec(name: str) -> ModelSpec:
    """The spec of a registered name (or of a pattern name such as ``cifar_resnet26``)."""
    return _resolve(name)[0]


def list_models() -> list[str]:
    """Every named network of the paper, in a stable order."""
    return list(_LISTED)


def create_model(name: str, **options) -> nn.Module:
    """Build a network by name; options that are ``None`` are dropped (CLI defaults never
    override a net's own defaults). Raises ``ValueError`` for an unknown name (listing
    close matches) or a bad option."""
    spec, builder = _resolve(name)
    return builder(spec, **{k: v for k, v in options.items() if v is not None})
