from .report import collect_runs, depth_trend, summarize, verdicts, write_report
from .responses import layer_responses, response_layers
from .study import STUDIES, Study, ensure_responses, get_study, register_study, run_study

__all__ = [
    "STUDIES",
    "Study",
    "collect_runs",
    "depth_trend",
    "ensure_responses",
    "get_study",
    "layer_responses",
    "register_study",
    "response_layers",
    "run_study",
    "summarize",
    "verdicts",
    "write_report",
]
