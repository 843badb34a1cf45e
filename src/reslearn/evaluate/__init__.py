"""Evaluation, outside the training engine: views, scoring, loading a trained model."""

from .evaluate import evaluate
from .load import build_model, checkpoint_data, evaluate_checkpoint, load_for_inference
from .views import (
    IMAGENET_VIEWS,
    VIEWS,
    ViewFn,
    center_view,
    flip_views,
    fully_convolutional_logits,
    get_view,
    multiscale,
    single_view,
    ten_crop,
)

__all__ = [
    "IMAGENET_VIEWS",
    "center_view",
    "fully_convolutional_logits",
    "multiscale",
    "ten_crop",
    "VIEWS",
    "ViewFn",
    "build_model",
    "checkpoint_data",
    "evaluate",
    "evaluate_checkpoint",
    "flip_views",
    "get_view",
    "load_for_inference",
    "single_view",
]
