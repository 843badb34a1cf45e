"""reslearn: Deep Residual Learning for Image Recognition (He et al., 2015) in PyTorch."""

from .models import (
    Complexity,
    ResNet,
    complexity,
    create_model,
    list_models,
    stage_complexity,
)

__version__ = "0.1.0"

__all__ = [
    "Complexity",
    "ResNet",
    "__version__",
    "complexity",
    "create_model",
    "list_models",
    "stage_complexity",
]
