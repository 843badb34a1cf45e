"""Model registry: ``register_model`` / ``create_model`` / ``list_models`` (timm-style)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable

from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
# Names listed by list_models(); aliases (cifar_resnet20, ...) are registered but unlisted.
_LISTED: list[str] = []


def register_model(name: str, *, listed: bool = True):
    """Decorator: register a constructor ``fn(**overrides) -> nn.Module`` under ``name``."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = fn
        if listed:
            _LISTED.append(name)
        return fn

    return deco


# resnet{D} / plain{D} / cifar_resnet{D} / cifar_plain{D} for any CIFAR depth D = 6n+2.
_CIFAR_NAME = re.compile(r"^(?:cifar_)?(resnet|plain)(\d+)$")


def _cifar_fallback(name: str) -> Callable[..., nn.Module] | None:
    from .zoo import cifar_net  # local import: zoo registers into this module

    m = _CIFAR_NAME.match(name)
    if m is None:
        return None
    kind, depth = m.group(1), int(m.group(2))
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"{name!r}: a CIFAR net needs depth 6n+2 with n >= 1 (8, 14, 20, 26, 32, ...), "
            f"got {depth}; ImageNet depths are 18, 34, 50, 101, 152"
        )
    return lambda **kw: cifar_net(depth, residual=kind == "resnet", **kw)


def list_models() -> list[str]:
    """Every named network of the paper, in a stable order."""
    from . import zoo  # noqa: F401  (registers the models)

    return list(_LISTED)


def create_model(name: str, **overrides) -> nn.Module:
    """Build a network by name; overrides that are ``None`` are dropped (CLI defaults).

    Raises ``ValueError`` for an unknown name (listing close matches) or a bad override.
    """
    from . import zoo  # noqa: F401

    if not isinstance(name, str):
        raise ValueError(f"model name must be a string, got {name!r}")
    kwargs = {k: v for k, v in overrides.items() if v is not None}
    fn = _REGISTRY.get(name) or _cifar_fallback(name)
    if fn is None:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {name!r}{hint} (see reslearn.list_models())")
    return fn(**kwargs)
