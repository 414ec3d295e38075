"""The shared result types: Katib's currentOptimalTrial shape, strategies, round trips."""

from __future__ import annotations

import json

import pytest
from kubeflow_katib_api.models import V1beta1OptimalTrial

from kaizen.tuning.result import (
    ExperimentResult,
    TrialRecord,
    build_optimal_trial,
    default_metric_strategies,
    metric_strategies,
)


def trial(name: str, values: list[float], status: str = "Succeeded", **params: str) -> TrialRecord:
    """A trial reporting ``values`` of val_roc_auc at steps 1.., and val_loss = 1 - value."""
    intermediate = [
        (step, {"val_roc_auc": value, "val_loss": 1 - value})
        for step, value in enumerate(values, start=1)
    ]
    metrics = dict(intermediate[-1][1]) if intermediate else {}
    return TrialRecord(
        name=name,
        parameters=params or {"lr": "0.01"},
        metrics=metrics,
        status=status,  # type: ignore[arg-type]
        started_at="2026-01-01T00:00:00.000Z",
        finished_at="2026-01-01T00:00:05.000Z",
        duration_s=5.0,
        intermediate=intermediate,
    )


def optimal(trials: list[TrialRecord], **kwargs: object) -> dict[str, object] | None:
    options: dict[str, object] = {
        "objective_metric": "val_roc_auc",
        "goal_type": "maximize",
        "metric_names": ["val_roc_auc", "val_loss"],
    }
    options.update(kwargs)
    return build_optimal_trial(trials, **options)  # type: ignore[arg-type]


def test_optimal_trial_has_katibs_current_optimal_trial_shape() -> None:
    best = optimal([trial("e-a", [0.7, 0.8], lr="0.1"), trial("e-b", [0.75, 0.9], lr="0.003")])

    assert best is not None
    # Katib's own model reads it: the same field names and string values as the CR status.
    parsed = V1beta1OptimalTrial.from_dict(best)
    assert parsed is not None
    assert parsed.best_trial_name == "e-b"
    assert best["parameterAssignments"] == [{"name": "lr", "value": "0.003"}]
    metrics = {m["name"]: m for m in best["observation"]["metrics"]}  # type: ignore[index]
    assert metrics["val_roc_auc"] == {
        "name": "val_roc_auc",
        "latest": "0.9",
        "max": "0.9",
        "min": "0.75",
    }
    assert float(metrics["val_loss"]["min"]) == pytest.approx(0.1)


def test_strategy_decides_which_trial_is_optimal() -> None:
    # a peaks high then falls; b ends higher than a ends but never reaches a's peak.
    trials = [trial("e-a", [0.95, 0.6]), trial("e-b", [0.7, 0.8])]

    assert optimal(trials)["bestTrialName"] == "e-a"  # type: ignore[index]  # Katib default: max
    assert optimal(trials, strategy="latest")["bestTrialName"] == "e-b"  # type: ignore[index]
    by_loss = optimal(trials, objective_metric="val_loss", goal_type="minimize")
    assert by_loss["bestTrialName"] == "e-a"  # type: ignore[index]


def test_only_observed_trials_compete_and_ties_keep_the_first() -> None:
    trials = [
        trial("e-failed", [0.99], status="Failed"),
        trial("e-killed", [0.98], status="Killed"),
        trial("e-first", [0.8]),
        trial("e-stopped", [0.85], status="EarlyStopped"),
        trial("e-tie", [0.85]),
    ]

    assert optimal(trials)["bestTrialName"] == "e-stopped"  # type: ignore[index]
    assert optimal(trials[:2]) is None


def test_default_strategies_follow_katibs_webhook() -> None:
    assert default_metric_strategies("auc", "maximize", ["acc"]) == {"auc": "max", "acc": "max"}
    assert default_metric_strategies("loss", "minimize", ["acc"]) == {"loss": "min", "acc": "min"}
    objective = {
        "type": "maximize",
        "objectiveMetricName": "auc",
        "additionalMetricNames": ["acc", "loss"],
        "metricStrategies": [{"name": "auc", "value": "latest"}],
    }
    assert metric_strategies(objective) == {"auc": "latest", "acc": "max", "loss": "max"}
    objective["metricStrategies"] = [{"name": "auc", "value": "median"}]
    with pytest.raises(ValueError, match="strategy 'median' of metric 'auc'"):
        metric_strategies(objective)


def test_experiment_result_round_trips_through_json() -> None:
    trials = [trial("e-a", [0.7, 0.8]), trial("e-b", [0.5], status="EarlyStopped")]
    result = ExperimentResult(
        name="e",
        status="Succeeded",
        reason="ExperimentMaxTrialsReached",
        trials=trials,
        optimal_trial=optimal(trials),
        goal_reached=False,
    )

    again = ExperimentResult.from_dict(json.loads(json.dumps(result.to_dict())))

    assert again == result
    assert again.best_parameters() == {"lr": "0.01"}
    assert again.best_trial() == trials[0]
    assert [t.name for t in again.trials_with_status("EarlyStopped")] == ["e-b"]


def test_best_parameters_without_optimal_trial_says_why() -> None:
    result = ExperimentResult(name="e", status="Failed", reason="ExperimentFailed: 4 failed")

    with pytest.raises(LookupError, match=r"'e' has no optimal trial.*4 failed"):
        result.best_parameters()


def test_bad_records_are_refused_with_the_field() -> None:
    with pytest.raises(ValueError, match="status 'Done' is not one of"):
        TrialRecord(name="t", parameters={}, status="Done")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"misses field\(s\) \['parameters'\]"):
        TrialRecord.from_dict({"name": "t", "status": "Running"})
    with pytest.raises(ValueError, match="status 'Pending' is not one of"):
        ExperimentResult.from_dict({"name": "e", "status": "Pending"})
