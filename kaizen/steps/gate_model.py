"""Step: decide pass or fail on thresholds and against the champion; record the outcome."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kaizen.platform.fileio import write_json_atomic
from kaizen.steps._io import read_json, tracker

if TYPE_CHECKING:
    from kaizen.platform.settings import Settings


def gate_step(
    evaluation_path: str | os.PathLike[str],
    decision_path: str | os.PathLike[str],
    *,
    settings: Settings,
    min_accuracy: float = 0.80,
    min_roc_auc: float = 0.90,
    min_recall: float = 0.50,
    min_precision: float | None = None,
    regression_tolerance: float = 0.01,
    run_id: str = "",
    round_index: int = 0,
) -> dict[str, Any]:
    """Decide pass or fail: absolute thresholds, and no regression against the champion.

    When the evaluation holds the champion's metrics on the same test window, the candidate's
    ROC-AUC must also be at least the champion's minus ``regression_tolerance``. The first
    model (no champion yet) is judged on the thresholds alone. Accuracy, recall and precision
    are those at the operating threshold the evaluate step chose on validation; the decision
    carries that choice (``threshold``) on to the register step, which records it with the
    model version.

    With a ``run_id`` the decision is also recorded in the object store under
    ``runs/<run_id>/gate-round-<k>.json``, where the notify step finds every round's outcome.
    """
    from kaizen.evaluation.gate import Check, GatePolicy, NoRegressionCheck, decide
    from kaizen.evaluation.outcomes import record_gate_outcome
    from kaizen.platform.storage import open_store

    evaluation = read_json(evaluation_path)
    metrics = evaluation["metrics"]
    policy = GatePolicy(
        min_accuracy=min_accuracy,
        min_roc_auc=min_roc_auc,
        min_recall=min_recall,
        min_precision=min_precision,
    )
    champion = evaluation.get("champion")
    extra: list[Check] = []
    if champion and champion.get("comparable"):
        extra.append(
            NoRegressionCheck(
                "roc_auc",
                champion_value=float(champion["metrics"]["roc_auc"]),
                tolerance=regression_tolerance,
                champion=f"champion v{champion['version']}",
            )
        )
    decision = decide(metrics, policy, extra_checks=extra)
    payload = decision.to_dict()
    payload["round"] = round_index
    payload["champion"] = champion
    payload["threshold"] = evaluation.get("threshold")
    write_json_atomic(Path(decision_path), payload)
    if run_id:
        record_gate_outcome(open_store(settings), run_id, round_index, payload, metrics)
        run = tracker(run_id, settings)
        if run is not None:
            run.log_gate_decision(payload, round_index=round_index)
    return payload
