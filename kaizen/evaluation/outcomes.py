"""Gate outcomes of a pipeline run: one record per round in the object store, and the
sentence a person reads about them in the run's notification.

The gate step writes a round's record (a retried gate writes the same record again); the
notify step, which runs whether the run succeeded or failed, reads every round back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kaizen.evaluation.metrics import HEADLINE_METRICS
from kaizen.platform.storage import ObjectStore


def outcome_key(run_id: str, round_index: int) -> str:
    """``runs/<run id>/gate-round-<k>.json``, with anything unsafe in the id replaced."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in run_id)
    return f"runs/{safe}/gate-round-{round_index}.json"


def record_gate_outcome(
    store: ObjectStore,
    run_id: str,
    round_index: int,
    decision: Mapping[str, Any],
    metrics: Mapping[str, Any],
) -> None:
    """Store one round's gate outcome; a retried gate step writes the same record again."""
    record = {
        "round": round_index,
        "passed": bool(decision.get("passed")),
        "reasons": list(decision.get("reasons", [])),
        "metrics": {name: metrics.get(name) for name in HEADLINE_METRICS},
    }
    store.put_bytes(
        outcome_key(run_id, round_index),
        json.dumps(record, sort_keys=True).encode(),
        overwrite=True,
    )


def gate_outcomes(store: ObjectStore, run_id: str) -> list[dict[str, Any]]:
    """Every recorded gate round of ``run_id``, in round order."""
    prefix = outcome_key(run_id, 0).rsplit("/", 1)[0] + "/"
    rounds = [json.loads(store.get_bytes(key)) for key in store.list(prefix)]
    return sorted(rounds, key=lambda record: int(record["round"]))


def outcome_message(state: str, error_message: str, rounds: list[dict[str, Any]]) -> str:
    """One sentence a person reads in the notification."""
    succeeded = state.upper() in {"SUCCEEDED", "SUCCESS"}
    if not succeeded:
        return f"run failed: {error_message or 'see task logs'}"
    if not rounds:
        return "run succeeded"
    passed = [record for record in rounds if record["passed"]]
    if passed:
        winner = passed[0]
        roc_auc = winner["metrics"].get("roc_auc")
        return f"run succeeded: gate passed in round {winner['round']}" + (
            f" (roc_auc {roc_auc:.3f})" if isinstance(roc_auc, int | float) else ""
        )

    def score(record: dict[str, Any]) -> float:
        value = record["metrics"].get("roc_auc")
        return float(value) if isinstance(value, int | float) else float("-inf")

    best = max(rounds, key=score)
    reached = ", ".join(
        f"{name} {value:.3f}"
        for name, value in best["metrics"].items()
        if isinstance(value, int | float)
    )
    failing = "; ".join(reason for reason in best["reasons"] if reason.endswith("fail"))
    return (
        f"gate failed after {len(rounds)} round(s), model not registered; best reached in round "
        f"{best['round']}: {reached} ({failing})"
    )
