"""Lineage of a registered version and the registry status, read back from MLflow."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from kaizen.platform.settings import Settings
from kaizen.registry import (
    ModelVersionNotFoundError,
    PipelineRunTracker,
    fingerprint_parquet,
    lineage,
    promote,
    register_challenger,
    status,
)
from kaizen.tuning.result import ExperimentResult, TrialRecord

MANIFEST = {
    "feature_service": "fraud_model_v1",
    "feature_views": ["customer_stats", "merchant_stats", "transaction_features"],
    "feature_names": ["a", "b"],
    "windows": {
        "train": {"start": "2026-01-08T00:00:00+00:00", "end": "2026-01-26T00:00:00+00:00"},
        "test": {"start": "2026-01-31T00:00:00+00:00", "end": "2026-02-05T00:00:00+00:00"},
    },
}
PASS = {"passed": True, "reasons": ["roc_auc 0.950 >= 0.900: pass"]}
FAIL = {"passed": False, "reasons": ["recall 0.300 < 0.500: fail"]}


def _experiment(name: str) -> ExperimentResult:
    trial = TrialRecord(
        name=f"{name}-abcd1234",
        parameters={"learning_rate": "0.003", "units": "48"},
        metrics={"val_roc_auc": 0.94},
        status="Succeeded",
        intermediate=[(1, {"val_roc_auc": 0.94})],
    )
    return ExperimentResult(
        name=name,
        status="Succeeded",
        reason="budget spent",
        trials=[trial],
        optimal_trial={
            "bestTrialName": trial.name,
            "parameterAssignments": [
                {"name": "learning_rate", "value": "0.003"},
                {"name": "units", "value": "48"},
            ],
        },
    )


def _data(tmp_path: Path, name: str, rows: int) -> Path:
    path = tmp_path / f"{name}.parquet"
    pd.DataFrame({"amount": [float(i) for i in range(rows)], "is_fraud": [0] * rows}).to_parquet(
        path
    )
    return path


def test_lineage_traces_a_version_to_data_features_tuning_code_and_runs(
    tmp_path: Path, model_export: Path, settings: Settings
) -> None:
    train_data = _data(tmp_path, "train", 30)
    transactions = _data(tmp_path, "transactions", 40)
    tracker = PipelineRunTracker("pipeline-7", settings=settings)
    tracker.log_data(
        manifest=MANIFEST,
        training_data=train_data,
        transactions=transactions,
        git_commit="9f8e7d6",
    )
    tracker.log_tuning(_experiment("fraud-mlp-tpe-pipeline-7"), round_index=0)
    tracker.log_training(model_export, round_index=0)
    tracker.log_evaluation({"metrics": {"roc_auc": 0.95}}, round_index=0)
    tracker.log_gate_decision(PASS, round_index=0)
    info = register_challenger(model_export, run_id=tracker.round_run_id(0), settings=settings)

    chain = lineage(info.version, settings=settings)

    assert chain["model"]["version"] == 1
    assert chain["model"]["sha256"] == info.sha256
    assert chain["mlflow_run_id"] == tracker.round_run_id(0)
    assert chain["parent_run_id"] == tracker.run_id
    assert chain["pipeline_run_id"] == "pipeline-7"
    assert chain["round"] == 0
    assert chain["data"]["fingerprint"] == fingerprint_parquet(train_data)
    assert chain["data"]["transactions_fingerprint"] == fingerprint_parquet(transactions)
    assert chain["data"]["windows"] == MANIFEST["windows"]
    assert chain["features"] == {
        "service": "fraud_model_v1",
        "views": ["customer_stats", "merchant_stats", "transaction_features"],
    }
    assert chain["tuning"] == {
        "katib_experiment": "fraud-mlp-tpe-pipeline-7",
        "best_trial": "fraud-mlp-tpe-pipeline-7-abcd1234",
        "best_parameters": {"learning_rate": "0.003", "units": "48"},
    }
    assert chain["training"]["hyperparameters"]["units"] == "8"
    assert chain["code"] == {"git_commit": "9f8e7d6"}
    assert lineage("champion", settings=settings) == chain


def test_lineage_of_an_untuned_version_reports_no_tuning_and_unknown_versions_fail(
    model_export: Path,
    settings: Settings,
) -> None:
    tracker = PipelineRunTracker("pipeline-plain", settings=settings)
    register_challenger(model_export, run_id=tracker.round_run_id(0), settings=settings)

    chain = lineage(1, settings=settings)

    assert chain["tuning"] is None
    assert chain["data"]["fingerprint"] is None
    with pytest.raises(ModelVersionNotFoundError, match=r"no version 5; versions: \[1\]"):
        lineage(5, settings=settings)


def test_status_shows_champion_challenger_previous_and_recent_gate_decisions(
    model_export: Path, other_model_export: Path, settings: Settings
) -> None:
    first = PipelineRunTracker("pipeline-1", settings=settings)
    first.log_evaluation({"metrics": {"roc_auc": 0.91}}, round_index=0)
    first.log_gate_decision(PASS, round_index=0)
    register_challenger(model_export, run_id=first.round_run_id(0), settings=settings)
    second = PipelineRunTracker("pipeline-2", settings=settings)
    second.log_gate_decision(FAIL, round_index=0)
    second.log_evaluation({"metrics": {"roc_auc": 0.96}}, round_index=1)
    second.log_gate_decision(PASS, round_index=1)
    register_challenger(other_model_export, run_id=second.round_run_id(1), settings=settings)
    third = PipelineRunTracker("pipeline-3", settings=settings)
    third.log_gate_decision(FAIL, round_index=0)
    promote(2, actor="alice", settings=settings)

    report = status(limit=2, settings=settings)

    assert report["model_name"] == "fraud-detector"
    assert report["champion"]["version"] == 2
    assert report["champion"]["metrics"] == {"test_roc_auc": 0.96}
    assert report["previous_champion"]["version"] == 1
    assert report["previous_champion"]["metrics"] == {"test_roc_auc": 0.91}
    assert report["challenger"] is None
    runs = report["recent_runs"]
    assert [run["pipeline_run_id"] for run in runs] == ["pipeline-3", "pipeline-2"]
    assert (runs[0]["gate"], runs[0]["registered_version"]) == ("fail", None)
    assert (runs[1]["gate"], runs[1]["registered_version"]) == ("pass", 2)
    assert [(item["round"], item["outcome"]) for item in runs[1]["gate_rounds"]] == [
        (0, "fail"),
        (1, "pass"),
    ]
    assert runs[1]["gate_rounds"][0]["reasons"] == "recall 0.300 < 0.500: fail"
    assert len(status(settings=settings)["recent_runs"]) == 3


def test_status_of_an_empty_store_has_nothing_to_show(settings: Settings) -> None:
    report = status(settings=settings)

    assert report["champion"] is None
    assert report["challenger"] is None
    assert report["previous_champion"] is None
    assert report["recent_runs"] == []
