"""Evaluation, outside the training engine: views, scoring, loading a trained model."""

from .evaluate import evaluate
from .load import build_model, checkpoint_split, evaluate_checkpoint, load_with_normalizer
from .views import (
    TEST_VIEWS,
    TestView,
    ViewFn,
    center_view,
    fully_convolutional_logits,
    get_test_view,
    multiscale,
    single_view,
    ten_crop,
)

__all__ = [
    "TEST_VIEWS",
    "TestView",
    "ViewFn",
    "build_model",
    "center_view",
    "checkpoint_split",
    "evaluate",
    "evaluate_checkpoint",
    "fully_convolutional_logits",
    "get_test_view",
    "load_with_normalizer",
    "multiscale",
    "single_view",
    "ten_crop",
]
