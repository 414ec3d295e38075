"""Gate outcomes per round in the object store, and the sentence the notification carries."""

from __future__ import annotations

from pathlib import Path

from kaizen.evaluation.outcomes import gate_outcomes, outcome_message, record_gate_outcome
from kaizen.platform.storage import LocalObjectStore

METRICS = {
    "accuracy": 0.97,
    "roc_auc": 0.93,
    "pr_auc": 0.6,
    "precision": 0.4,
    "recall": 0.8,
    "f1": 0.53,
    "threshold": 0.5,
    "base_rate": 0.02,
}


def test_rounds_come_back_in_round_order_and_a_retried_gate_does_not_duplicate(
    tmp_path: Path,
) -> None:
    store = LocalObjectStore(tmp_path)
    failed = {"passed": False, "reasons": ["roc_auc 0.85 >= 0.9: fail"]}
    record_gate_outcome(store, "run/1", 1, {"passed": True, "reasons": []}, METRICS)
    record_gate_outcome(store, "run/1", 0, failed, {**METRICS, "roc_auc": 0.85})
    record_gate_outcome(store, "run/1", 0, failed, {**METRICS, "roc_auc": 0.85})  # retried

    rounds = gate_outcomes(store, "run/1")

    assert [record["round"] for record in rounds] == [0, 1]
    assert rounds[0]["passed"] is False and rounds[1]["passed"] is True
    # the headline metrics only; the threshold is not a quality figure
    assert set(rounds[1]["metrics"]) == {
        "accuracy",
        "roc_auc",
        "pr_auc",
        "precision",
        "recall",
        "f1",
    }
    assert gate_outcomes(store, "another-run") == []


def test_the_message_names_the_round_that_passed() -> None:
    rounds = [
        {"round": 0, "passed": False, "reasons": ["x: fail"], "metrics": {"roc_auc": 0.85}},
        {"round": 1, "passed": True, "reasons": [], "metrics": {"roc_auc": 0.93}},
    ]
    assert outcome_message("SUCCEEDED", "", rounds) == (
        "run succeeded: gate passed in round 1 (roc_auc 0.930)"
    )


def test_when_every_round_failed_the_message_gives_the_best_reached_and_why() -> None:
    rounds = [
        {
            "round": 0,
            "passed": False,
            "reasons": ["roc_auc 0.80 >= 0.9: fail", "recall ok: pass"],
            "metrics": {"roc_auc": 0.80, "recall": 0.7},
        },
        {
            "round": 1,
            "passed": False,
            "reasons": ["roc_auc 0.88 >= 0.9: fail"],
            "metrics": {"roc_auc": 0.88, "recall": 0.6},
        },
    ]
    message = outcome_message("SUCCEEDED", "", rounds)
    assert message.startswith("gate failed after 2 round(s), model not registered")
    assert "best reached in round 1: roc_auc 0.880, recall 0.600" in message
    assert message.endswith("(roc_auc 0.88 >= 0.9: fail)")


def test_a_failed_run_says_so_whatever_the_gate_did() -> None:
    assert outcome_message("FAILED", "task 'train-model' failed", []) == (
        "run failed: task 'train-model' failed"
    )
    assert outcome_message("FAILED", "", []) == "run failed: see task logs"
