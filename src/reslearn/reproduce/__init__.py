from .report import collect_runs, depth_trend, summarize, verdicts, write_report
from .responses import layer_responses, response_layers
from .study import (
    FIGURE4_MODELS,
    PAPER_MODELS,
    ensure_responses,
    reproduce_cifar,
    reproduce_imagenet,
    run_study,
)

__all__ = [
    "FIGURE4_MODELS",
    "PAPER_MODELS",
    "reproduce_imagenet",
    "run_study",
    "collect_runs",
    "depth_trend",
    "ensure_responses",
    "layer_responses",
    "reproduce_cifar",
    "response_layers",
    "summarize",
    "verdicts",
    "write_report",
]
