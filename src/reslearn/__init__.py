"""reslearn: Deep Residual Learning for Image Recognition (He et al., 2015) in PyTorch."""

from ._version import __version__
from .models import (
    Complexity,
    ModelSpec,
    ResNet,
    complexity,
    create_model,
    get_model_spec,
    list_models,
    stage_complexity,
)


def __getattr__(name: str):
    """``reslearn.load`` on first use: ``import reslearn`` stays light (models only), and
    loads no training, evaluation or data code until a net is loaded."""
    if name == "load":
        from .use import load

        return load
    raise AttributeError(f"module 'reslearn' has no attribute {name!r}")


__all__ = [
    "Complexity",
    "ModelSpec",
    "ResNet",
    "__version__",
    "complexity",
    "create_model",
    "get_model_spec",
    "list_models",
    "load",
    "stage_complexity",
]
