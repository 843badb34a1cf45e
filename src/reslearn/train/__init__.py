from .config import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig
from .engine import SpeedSettings, TrainStep, evaluate, load_for_inference, read_metrics, train

__all__ = [
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "SpeedSettings",
    "TrainConfig",
    "TrainStep",
    "evaluate",
    "load_for_inference",
    "read_metrics",
    "train",
]
