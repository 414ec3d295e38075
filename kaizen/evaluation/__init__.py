"""Evaluation: metrics from labels and scores, the quality gate, and reports with plots.

``metrics`` and ``gate`` need only numpy (scikit-learn is imported when metrics are
computed); ``threshold`` chooses the operating threshold; ``report`` imports matplotlib
inside its functions.
"""

from kaizen.evaluation.gate import (
    Check,
    CheckResult,
    GateDecision,
    GatePolicy,
    ThresholdCheck,
    decide,
)
from kaizen.evaluation.metrics import CLASS_LABELS, EvaluationResult, evaluate_scores
from kaizen.evaluation.report import write_html_report, write_plots
from kaizen.evaluation.threshold import ThresholdChoice, ThresholdPolicy, choose_threshold

__all__ = [
    "CLASS_LABELS",
    "Check",
    "CheckResult",
    "EvaluationResult",
    "GateDecision",
    "GatePolicy",
    "ThresholdCheck",
    "ThresholdChoice",
    "ThresholdPolicy",
    "choose_threshold",
    "decide",
    "evaluate_scores",
    "write_html_report",
    "write_plots",
]
