"""Evaluation, outside the training engine: views, scoring, loading a trained model."""

from .evaluate import evaluate
from .load import build_model, checkpoint_data, load_for_inference
from .views import VIEWS, ViewFn, flip_views, get_view, single_view

__all__ = [
    "VIEWS",
    "ViewFn",
    "build_model",
    "checkpoint_data",
    "evaluate",
    "flip_views",
    "get_view",
    "load_for_inference",
    "single_view",
]
