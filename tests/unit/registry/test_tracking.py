"""Pipeline runs in MLflow: one parent run per pipeline run id, rounds and trials nested."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kaizen.platform.settings import Settings
from kaizen.registry import (
    PipelineRunTracker,
    TrackingError,
    artifact_environment,
    artifact_root,
    fingerprint_parquet,
    ui_command,
)
from kaizen.registry._backend import store_config
from kaizen.tuning.result import ExperimentResult, TrialRecord

MANIFEST = {
    "feature_service": "fraud_model_v1",
    "feature_views": ["customer_stats", "merchant_stats"],
    "feature_names": ["a", "b", "c"],
    "windows": {
        "train": {"start": "2026-01-08T00:00:00+00:00", "end": "2026-01-26T00:00:00+00:00"},
        "test": {"start": "2026-01-31T00:00:00+00:00", "end": "2026-02-05T00:00:00+00:00"},
    },
    "rows": {"train": 1200, "test": 300},
}


def _client(settings: Settings) -> Any:
    from mlflow import MlflowClient

    uri = settings.tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _frame(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"amount": rng.normal(size=50), "is_fraud": rng.integers(0, 2, 50)})


def test_every_process_of_a_pipeline_run_finds_the_same_parent_run(settings: Settings) -> None:
    first = PipelineRunTracker("run-a", settings=settings)
    again = PipelineRunTracker("run-a", settings=settings)
    other = PipelineRunTracker("run-b", settings=settings)

    assert first.run_id == again.run_id
    assert other.run_id != first.run_id
    round_0 = first.round_run_id(0)
    assert again.round_run_id(0) == round_0
    assert first.round_run_id(1) != round_0
    round_run = _client(settings).get_run(round_0)
    assert round_run.data.tags["mlflow.parentRunId"] == first.run_id
    assert round_run.info.run_name == "round-0"
    assert _client(settings).get_run(first.run_id).info.run_name == "run-a"


def test_a_pipeline_run_id_with_a_quote_is_refused(settings: Settings) -> None:
    with pytest.raises(ValueError, match=r"pipeline run id \"it's\" must .* no quotes"):
        PipelineRunTracker("it's", settings=settings)


def test_log_data_records_fingerprints_windows_features_and_code(
    tmp_path: Path, kaizen_home: Path
) -> None:
    settings = Settings(home=kaizen_home, git_commit="0123abc")
    train_path = tmp_path / "train.parquet"
    _frame(1).to_parquet(train_path)
    tracker = PipelineRunTracker("run-data", settings=settings)

    tracker.log_data(manifest=MANIFEST, training_data=train_path, git_commit=settings.git_commit)

    params = _client(settings).get_run(tracker.run_id).data.params
    assert params["data.fingerprint"] == fingerprint_parquet(train_path)
    assert params["features.service"] == "fraud_model_v1"
    assert params["features.views"] == "customer_stats,merchant_stats"
    assert params["data.window.train.start"] == "2026-01-08T00:00:00+00:00"
    assert params["data.window.test.end"] == "2026-02-05T00:00:00+00:00"
    assert params["code.git_commit"] == "0123abc"
    assert params["pipeline.run_id"] == "run-data"


def test_the_data_fingerprint_follows_the_rows_not_the_file_encoding(tmp_path: Path) -> None:
    frame = _frame(1)
    frame.to_parquet(tmp_path / "snappy.parquet", compression="snappy")
    frame.to_parquet(tmp_path / "plain.parquet", compression=None, row_group_size=7)
    changed = frame.copy()
    changed.loc[3, "amount"] += 1e-9
    changed.to_parquet(tmp_path / "changed.parquet")

    same = fingerprint_parquet(tmp_path / "snappy.parquet")
    assert (tmp_path / "snappy.parquet").read_bytes() != (tmp_path / "plain.parquet").read_bytes()
    assert fingerprint_parquet(tmp_path / "plain.parquet") == same
    assert fingerprint_parquet(tmp_path / "changed.parquet") != same
    with pytest.raises(FileNotFoundError, match=r"missing\.parquet"):
        fingerprint_parquet(tmp_path / "missing.parquet")


def test_a_param_relogged_with_another_value_is_refused_by_name(settings: Settings) -> None:
    tracker = PipelineRunTracker("run-params", settings=settings)
    tracker.log_pipeline_params({"seed": 42, "rows": 2000})
    tracker.log_pipeline_params({"seed": 42})  # a retried step: same value, accepted

    with pytest.raises(TrackingError, match=r"'pipeline.seed' was logged as '42' .* to '43'"):
        tracker.log_pipeline_params({"seed": 43})
    assert _client(settings).get_run(tracker.run_id).data.params["pipeline.seed"] == "42"


def test_training_metrics_are_logged_per_epoch_once(model_export: Path, settings: Settings) -> None:
    metadata = json.loads((model_export / "metadata.json").read_text())
    tracker = PipelineRunTracker("run-train", settings=settings)

    run_id = tracker.log_training(model_export, round_index=0)
    tracker.log_training(model_export, round_index=0)  # a retried step

    client = _client(settings)
    history = client.get_metric_history(run_id, "val_roc_auc")
    assert [m.step for m in history] == list(range(1, metadata["epochs_run"] + 1))
    assert [m.value for m in history] == pytest.approx(metadata["history"]["val_roc_auc"])
    run = client.get_run(run_id)
    assert run.data.params["hp.units"] == str(metadata["hparams"]["units"])
    assert run.data.metrics["best_epoch"] == metadata["best_epoch"]
    assert run.data.metrics["final_val_roc_auc"] == pytest.approx(
        metadata["metrics"]["validation"]["roc_auc"]
    )
    assert run.data.tags["kaizen.model_sha256"] == metadata["sha256"]


def test_evaluation_metrics_report_and_plots_land_in_the_object_store(
    tmp_path: Path, kaizen_home: Path, settings: Settings
) -> None:
    from kaizen.evaluation.metrics import evaluate_scores
    from kaizen.evaluation.report import write_html_report, write_plots

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 200)
    scores = np.clip(labels * 0.6 + rng.random(200) * 0.5, 0, 1)
    result = evaluate_scores(labels, scores)
    report = write_html_report(result, labels, scores, tmp_path / "report.html")
    write_plots(result, labels, scores, tmp_path / "plots")
    evaluation = {"metrics": result.to_dict(), "rows": 200}
    tracker = PipelineRunTracker("run-eval", settings=settings)

    logged = tracker.log_evaluation(
        evaluation, round_index=1, report=report, plots=tmp_path / "plots"
    )

    assert logged["test_roc_auc"] == pytest.approx(result.roc_auc)
    client = _client(settings)
    round_metrics = client.get_run(tracker.round_run_id(1)).data.metrics
    assert round_metrics["test_recall"] == pytest.approx(result.recall)
    parent_history = client.get_metric_history(tracker.run_id, "test_roc_auc")
    assert [(m.step, m.value) for m in parent_history] == [(1, pytest.approx(result.roc_auc))]
    names = {item.path for item in client.list_artifacts(tracker.run_id, "round-1")}
    assert names == {"round-1/evaluation.json", "round-1/report.html", "round-1/plots"}
    plots = {item.path for item in client.list_artifacts(tracker.run_id, "round-1/plots")}
    assert plots == {
        f"round-1/plots/{name}.png" for name in ("roc_curve", "pr_curve", "score_histogram")
    }
    stored = list((kaizen_home / "objects" / "mlflow").rglob("report.html"))
    assert len(stored) == 1 and stored[0].read_bytes() == report.read_bytes()


def _experiment() -> ExperimentResult:
    trials = [
        TrialRecord(
            name="fraud-mlp-tpe-aaaa1111",
            parameters={"learning_rate": "0.01", "units": "32"},
            metrics={"val_roc_auc": 0.91},
            status="Succeeded",
            started_at="2026-01-01T10:00:00.000Z",
            finished_at="2026-01-01T10:01:00.000Z",
            intermediate=[
                (1, {"val_roc_auc": 0.8}),
                (2, {"val_roc_auc": 0.9}),
                (3, {"val_roc_auc": 0.91}),
            ],
        ),
        TrialRecord(
            name="fraud-mlp-tpe-bbbb2222",
            parameters={"learning_rate": "0.001", "units": "64"},
            metrics={"val_roc_auc": 0.7},
            status="EarlyStopped",
            intermediate=[(1, {"val_roc_auc": 0.7})],
            message="median stopping rule",
        ),
        TrialRecord(
            name="fraud-mlp-tpe-cccc3333",
            parameters={"learning_rate": "0.9", "units": "16"},
            status="Failed",
            message="exit code 1: loss is NaN",
        ),
    ]
    return ExperimentResult(
        name="fraud-mlp-tpe-run1",
        status="Succeeded",
        reason="budget spent",
        trials=trials,
        optimal_trial={
            "bestTrialName": "fraud-mlp-tpe-aaaa1111",
            "parameterAssignments": [
                {"name": "learning_rate", "value": "0.01"},
                {"name": "units", "value": "32"},
            ],
            "observation": {"metrics": []},
        },
    )


def test_katib_trials_become_nested_runs_and_a_retry_duplicates_none(settings: Settings) -> None:
    tracker = PipelineRunTracker("run-tune", settings=settings)
    result = _experiment()

    first = tracker.log_tuning(result, round_index=0)
    second = tracker.log_tuning(result, round_index=0)  # a retried tune step

    assert first == second
    client = _client(settings)
    round_run = tracker.round_run_id(0)
    children = client.search_runs(
        [tracker.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{round_run}'"
    )
    assert sorted(run.info.run_name for run in children) == sorted(t.name for t in result.trials)
    by_name = {run.info.run_name: run for run in children}
    best = by_name["fraud-mlp-tpe-aaaa1111"]
    assert best.data.params == {"learning_rate": "0.01", "units": "32"}
    assert best.info.status == "FINISHED"
    assert best.data.tags["kaizen.trial.best"] == "True"
    history = client.get_metric_history(best.info.run_id, "val_roc_auc")
    assert [(m.step, m.value) for m in history] == [(1, 0.8), (2, 0.9), (3, 0.91)]
    stopped = by_name["fraud-mlp-tpe-bbbb2222"]
    assert stopped.data.tags["kaizen.trial.status"] == "EarlyStopped"
    assert stopped.data.tags["kaizen.trial.message"] == "median stopping rule"
    assert by_name["fraud-mlp-tpe-cccc3333"].info.status == "FAILED"
    round_tags = client.get_run(round_run).data.tags
    assert round_tags["kaizen.katib.experiment"] == "fraud-mlp-tpe-run1"
    assert round_tags["kaizen.katib.best_trial"] == "fraud-mlp-tpe-aaaa1111"
    assert json.loads(round_tags["kaizen.katib.best_parameters"]) == {
        "learning_rate": "0.01",
        "units": "32",
    }


def test_gate_decisions_are_recorded_per_round_and_overall(settings: Settings) -> None:
    tracker = PipelineRunTracker("run-gate", settings=settings)
    failed = {"passed": False, "reasons": ["recall 0.31 < 0.50: fail"]}
    passed = {"passed": True, "reasons": ["recall 0.62 >= 0.50: pass"]}

    tracker.log_gate_decision(failed, round_index=0)
    client = _client(settings)
    assert client.get_run(tracker.run_id).data.tags["kaizen.gate"] == "fail"
    tracker.log_gate_decision(passed, round_index=1)

    tags = client.get_run(tracker.run_id).data.tags
    assert tags["kaizen.gate"] == "pass"
    assert tags["kaizen.gate.round-0"] == "fail"
    assert tags["kaizen.gate.round-1"] == "pass"
    assert tags["kaizen.gate.summary.round-0"] == "recall 0.31 < 0.50: fail"
    assert client.get_run(tracker.round_run_id(0)).info.status == "FINISHED"
    decision = client.download_artifacts(tracker.run_id, "round-1/decision.json")
    assert json.loads(Path(decision).read_text())["passed"] is True
    with pytest.raises(TrackingError, match=r"boolean 'passed', got 'yes'"):
        tracker.log_gate_decision({"passed": "yes"}, round_index=2)


def test_finish_ends_the_parent_and_open_round_runs(settings: Settings) -> None:
    tracker = PipelineRunTracker("run-finish", settings=settings)
    round_run = tracker.round_run_id(0)

    tracker.finish("FAILED")

    client = _client(settings)
    assert client.get_run(tracker.run_id).info.status == "FAILED"
    assert client.get_run(round_run).info.status == "FAILED"


def test_ui_command_points_at_the_tracking_database(kaizen_home: Path, settings: Settings) -> None:
    command = ui_command(settings)

    assert command == f"mlflow ui --backend-store-uri sqlite:///{kaizen_home}/mlflow.db --port 5000"


def test_artifacts_go_to_the_object_store_of_the_storage_backend(kaizen_home: Path) -> None:
    local = Settings(home=kaizen_home)
    s3 = Settings(
        home=kaizen_home,
        storage_backend="s3",
        s3_bucket="models",
        s3_endpoint="minio.kaizen:9000",
        s3_secure=False,
        s3_region="eu-west-1",
    )
    server = Settings(home=kaizen_home, mlflow_tracking_uri="http://mlflow.kaizen:5000")

    assert artifact_root(local) == (kaizen_home / "objects" / "mlflow").as_uri()
    assert artifact_root(s3) == "s3://models/mlflow"
    assert artifact_environment(local) == {}
    environment = artifact_environment(s3)
    assert environment["MLFLOW_S3_ENDPOINT_URL"] == "http://minio.kaizen:9000"
    assert environment["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(environment)
    # A tracking server owns its artifact root; Kaizen does not impose one.
    assert store_config(server).artifact_root is None
    assert store_config(server).lock_path == kaizen_home / "locks" / "mlflow.lock"
