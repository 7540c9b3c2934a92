"""Scoring: metrics and threshold picking, held-out evaluation of a run, its report and plots.

Front door::

    from deg_train.evaluation import compute_metrics, pick_thresholds, evaluate_run, pick_run_thresholds
"""

from deg_train.evaluation.evaluate import EvaluationError, EvaluationReport, evaluate_run, pick_run_thresholds
from deg_train.evaluation.metrics import MetricsReport, compute_metrics, pick_thresholds, threshold_search

__all__ = [
    "EvaluationError",
    "EvaluationReport",
    "MetricsReport",
    "compute_metrics",
    "evaluate_run",
    "pick_run_thresholds",
    "pick_thresholds",
    "threshold_search",
]
