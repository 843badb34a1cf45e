from .cifar import PAPER_MODELS, ensure_responses, reproduce_cifar
from .report import collect_runs, summarize, verdicts, write_report
from .responses import layer_responses, response_layers

__all__ = [
    "PAPER_MODELS",
    "collect_runs",
    "ensure_responses",
    "layer_responses",
    "reproduce_cifar",
    "response_layers",
    "summarize",
    "verdicts",
    "write_report",
]
