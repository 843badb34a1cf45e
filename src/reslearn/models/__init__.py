from .blocks import BasicBlock, Bottleneck
from .complexity import Complexity, StageComplexity, complexity, stage_complexity
from .registry import create_model, list_models, register_model
from .resnet import ResNet
from .shortcuts import ZeroPadShortcut

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "Complexity",
    "ResNet",
    "StageComplexity",
    "ZeroPadShortcut",
    "complexity",
    "create_model",
    "list_models",
    "register_model",
    "stage_complexity",
]
