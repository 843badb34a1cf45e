"""reslearn: Deep Residual Learning for Image Recognition (He et al., 2015) in PyTorch."""

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

__version__ = "0.1.0"

from .use import load  # noqa: E402  (needs __version__ defined: the engine reads it)

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
