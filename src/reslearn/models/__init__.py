from . import zoo  # noqa: F401  (registers the named nets into the registry)
from .blocks import BasicBlock, Bottleneck
from .complexity import Complexity, StageComplexity, complexity, stage_complexity
from .registry import ModelSpec, create_model, get_model_spec, list_models, register_model
from .resnet import ResNet
from .shortcuts import ZeroPadShortcut

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "Complexity",
    "ModelSpec",
    "ResNet",
    "StageComplexity",
    "ZeroPadShortcut",
    "complexity",
    "create_model",
    "get_model_spec",
    "list_models",
    "register_model",
    "stage_complexity",
]
