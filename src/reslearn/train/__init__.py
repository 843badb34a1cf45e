from ..speed import SpeedSettings
from .config import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig
from .engine import build, is_finished, train
from .logging import read_metrics
from .optim import make_optimizer
from .step import TrainStep

__all__ = [
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "SpeedSettings",
    "TrainConfig",
    "TrainStep",
    "build",
    "is_finished",
    "make_optimizer",
    "read_metrics",
    "train",
]
