"""The KFP components, called through ``.python_func`` as the KFP executor calls them.

Every component is an entry point: it loads its settings from the environment (KAIZEN_HOME),
maps its artifacts onto one step in ``kaizen.steps`` and fills in the output artifacts'
metadata. The artifacts here are real ``kfp.dsl`` objects over real files (a plain local
``uri`` is its ``.path``), so what is checked is what a user sees in the Kubeflow UI and on
disk: the files each component writes, the metadata and metrics on its outputs, and its
return value.

The components run once per module, in pipeline order, on small generated data: each
fixture is one component call whose outputs the next one reads, under one KAIZEN_HOME.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
import yaml
from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Metrics, Model

from components.build_features import build_features
from components.evaluate_model import evaluate_model
from components.gate_model import gate_model
from components.ingest_data import ingest_data
from components.notify_run import notify_run
from components.register_model import register_model
from components.train_model import train_model
from components.tune_model import tune_model
from kaizen.data.columns import EVENT_TIMESTAMP, LABEL, RAW_COLUMNS
from kaizen.evaluation.metrics import HEADLINE_METRICS
from tests.support.webhook import Webhook

REPO = Path(__file__).resolve().parents[3]
RUN_ID = "components-run"
ROWS = 2000
# 24 days: 7 of warm-up, then train, 4 of validation and 4 of test.
DATA = {"customers": 60, "merchants": 20, "days": 24, "fraud_rate": 0.1, "drift": 0.0}
WINDOWS = {"validation_days": 4, "test_days": 4, "warmup_days": 7}
SMALL_MODEL = {
    "learning_rate": 0.01,
    "num_layers": 1,
    "units": 8,
    "dropout": 0.0,
    "batch_size": 128,
}


@contextmanager
def kaizen_env(home: Path) -> Iterator[None]:
    """The environment a component container gets: KAIZEN_HOME, no webhook from outside."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KAIZEN_HOME", str(home))
        patch.delenv("KAIZEN_WEBHOOK_URL", raising=False)
        yield


def artifact(kind: type[Any], folder: Path, name: str) -> Any:
    """An output artifact as the executor hands it over: a name and a local uri (= path)."""
    made = kind(name=name, uri=str(folder / name))
    assert made.path == str(folder / name)
    return made


def read_json(item: Any) -> Any:
    return json.loads(Path(item.path).read_text())


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    return SimpleNamespace(
        home=tmp_path_factory.mktemp("components-home"),
        work=tmp_path_factory.mktemp("components-artifacts"),
    )


# ------------------------------------------------------------------ ingest_data


@pytest.fixture(scope="module")
def transactions(pipeline: SimpleNamespace) -> Dataset:
    output = artifact(Dataset, pipeline.work, "transactions")
    with kaizen_env(pipeline.home):
        ingest_data.python_func(
            source_uri="", seed=7, rows=ROWS, **DATA, run_id=RUN_ID, transactions=output
        )
    return output


def test_ingest_data_writes_validated_transactions_and_describes_them(
    transactions: Dataset,
) -> None:
    frame = pd.read_parquet(transactions.path)

    assert len(frame) == ROWS
    assert set(RAW_COLUMNS) <= set(frame.columns)
    assert frame["transaction_id"].is_unique
    metadata = transactions.metadata
    assert metadata["rows"] == str(ROWS)
    assert metadata["customers"] == str(frame["customer_id"].nunique())
    assert metadata["merchants"] == str(frame["merchant_id"].nunique())
    assert float(metadata["fraud_rate"]) == pytest.approx(frame[LABEL].mean())
    assert pd.Timestamp(metadata["start"]) == frame[EVENT_TIMESTAMP].min()
    assert pd.Timestamp(metadata["end"]) == frame[EVENT_TIMESTAMP].max()


def test_ingest_data_reads_a_users_file_instead_of_generating(
    transactions: Dataset, tmp_path: Path
) -> None:
    mine = pd.read_parquet(transactions.path).head(300)
    source = tmp_path / "my-transactions.csv"
    mine.to_csv(source, index=False)
    output = artifact(Dataset, tmp_path, "transactions")

    with kaizen_env(tmp_path / "home"):
        ingest_data.python_func(
            source_uri=f"file://{source}", seed=1, rows=5, **DATA, run_id="", transactions=output
        )

    loaded = pd.read_parquet(output.path)
    assert sorted(loaded["transaction_id"]) == sorted(mine["transaction_id"])
    assert output.metadata["rows"] == "300"
    assert str(source) in output.metadata["source"]


def test_ingest_data_refuses_invalid_data_and_writes_nothing(
    transactions: Dataset, tmp_path: Path
) -> None:
    from kaizen.data.ingest import DataValidationError

    broken = pd.read_parquet(transactions.path).head(50).assign(amount=-5.0)
    source = tmp_path / "broken.parquet"
    broken.to_parquet(source)
    output = artifact(Dataset, tmp_path, "transactions")

    with kaizen_env(tmp_path / "home"), pytest.raises(DataValidationError, match="amount"):
        ingest_data.python_func(
            source_uri=str(source), seed=1, rows=5, **DATA, run_id="", transactions=output
        )

    assert not Path(output.path).exists()
    assert output.metadata == {}


# ------------------------------------------------------------------ build_features


@pytest.fixture(scope="module")
def features(pipeline: SimpleNamespace, transactions: Dataset) -> SimpleNamespace:
    outputs = SimpleNamespace(
        train=artifact(Dataset, pipeline.work, "train_data"),
        validation=artifact(Dataset, pipeline.work, "validation_data"),
        test=artifact(Dataset, pipeline.work, "test_data"),
        manifest=artifact(Artifact, pipeline.work, "feature_manifest"),
    )
    with kaizen_env(pipeline.home):
        build_features.python_func(
            transactions=transactions,
            feature_repo=str(REPO / "feature_repo"),
            **WINDOWS,
            run_id=RUN_ID,
            train_data=outputs.train,
            validation_data=outputs.validation,
            test_data=outputs.test,
            feature_manifest=outputs.manifest,
        )
    return outputs


def test_build_features_writes_three_consecutive_windows_with_the_manifests_features(
    features: SimpleNamespace,
) -> None:
    manifest = read_json(features.manifest)
    names = manifest["feature_names"]
    frames = {
        split: pd.read_parquet(getattr(features, split).path)
        for split in ("train", "validation", "test")
    }

    assert names and features.manifest.metadata["feature_service"] == manifest["feature_service"]
    for split, frame in frames.items():
        assert len(frame) > 0
        assert getattr(features, split).metadata["rows"] == len(frame) == manifest["rows"][split]
        assert set(names) <= set(frame.columns)
        assert frame[names].notna().all().all()
        assert set(frame[LABEL].unique()) <= {0, 1}
    # Time order: training data is older than validation data, which is older than test data.
    assert frames["train"][EVENT_TIMESTAMP].max() < frames["validation"][EVENT_TIMESTAMP].min()
    assert frames["validation"][EVENT_TIMESTAMP].max() < frames["test"][EVENT_TIMESTAMP].min()


# ------------------------------------------------------------------ train_model


@pytest.fixture(scope="module")
def trained(pipeline: SimpleNamespace, features: SimpleNamespace) -> SimpleNamespace:
    outputs = SimpleNamespace(
        model=artifact(Model, pipeline.work, "model"),
        metrics=artifact(Metrics, pipeline.work, "training_metrics"),
    )
    with kaizen_env(pipeline.home):
        train_model.python_func(
            train_data=features.train,
            validation_data=features.validation,
            feature_manifest=features.manifest,
            **SMALL_MODEL,
            epochs=1,
            patience=1,
            seed=7,
            run_id=RUN_ID,
            round_index=0,
            model=outputs.model,
            training_metrics=outputs.metrics,
        )
    return outputs


def test_train_model_exports_the_model_with_its_digest_and_logs_its_metrics(
    trained: SimpleNamespace, features: SimpleNamespace
) -> None:
    folder = Path(trained.model.path)
    digest = hashlib.sha256((folder / "model.keras").read_bytes()).hexdigest()

    assert trained.model.metadata == {"sha256": digest, "framework": "keras"}
    assert json.loads((folder / "metadata.json").read_text())["sha256"] == digest
    features_file = json.loads((folder / "features.json").read_text())
    assert features_file == read_json(features.manifest)["feature_names"]
    logged = trained.metrics.metadata
    assert logged["epochs_run"] == 1.0 and logged["best_epoch"] == 1.0
    assert 0.0 <= logged["val_roc_auc"] <= 1.0
    assert all(isinstance(value, float) for value in logged.values())


# ------------------------------------------------------------------ tune_model


def test_tune_model_runs_the_experiment_and_returns_typed_hyperparameters_in_its_space(
    pipeline: SimpleNamespace, features: SimpleNamespace, tmp_path: Path
) -> None:
    # The project's Experiment, with one short trial: one epoch instead of eight.
    spec = yaml.safe_load((REPO / "katib" / "fraud-mlp-tpe.yaml").read_text())
    container = spec["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    container["command"] = [
        {"--epochs=8": "--epochs=1", "--patience=3": "--patience=1"}.get(part, part)
        for part in container["command"]
    ]
    experiment = tmp_path / "fraud-mlp-tpe.yaml"
    experiment.write_text(yaml.safe_dump(spec))
    result = artifact(Artifact, tmp_path, "tuning_result")
    best = artifact(Metrics, tmp_path, "best_metrics")

    with kaizen_env(pipeline.home):
        chosen = tune_model.python_func(
            train_data=features.train,
            validation_data=features.validation,
            feature_manifest=features.manifest,
            experiment_spec=str(experiment),
            tuning_backend="local",
            max_trial_count=1,
            parallel_trial_count=1,
            run_id=RUN_ID,
            round_index=0,
            **SMALL_MODEL,
            tuning_result=result,
            best_metrics=best,
        )

    recorded = read_json(result)
    experiment_result = recorded["experiment"]
    assert experiment_result["status"] == "Succeeded", experiment_result
    optimal = experiment_result["optimal_trial"]
    assert result.metadata["best_trial"] == optimal["bestTrialName"]
    logged = {m["name"]: float(m["latest"]) for m in optimal["observation"]["metrics"]}
    assert best.metadata == logged and 0.0 <= best.metadata["val_roc_auc"] <= 1.0
    # Typed for training, and inside the Experiment's feasible space.
    assert chosen._asdict() == recorded["hyperparameters"]
    assert isinstance(chosen.learning_rate, float) and 0.0005 <= chosen.learning_rate <= 0.01
    assert isinstance(chosen.num_layers, int) and 1 <= chosen.num_layers <= 3
    assert isinstance(chosen.units, int) and chosen.units in range(16, 129, 16)
    assert isinstance(chosen.dropout, float) and 0.0 <= chosen.dropout <= 0.4
    assert chosen.batch_size in (128, 256, 512)


# ------------------------------------------------------------------ evaluate_model


@pytest.fixture(scope="module")
def evaluated(
    pipeline: SimpleNamespace, features: SimpleNamespace, trained: SimpleNamespace
) -> SimpleNamespace:
    outputs = SimpleNamespace(
        metrics=artifact(Metrics, pipeline.work, "metrics"),
        classification=artifact(ClassificationMetrics, pipeline.work, "classification_metrics"),
        report=artifact(HTML, pipeline.work, "report"),
        evaluation=artifact(Artifact, pipeline.work, "evaluation"),
    )
    with kaizen_env(pipeline.home):
        evaluate_model.python_func(
            model=trained.model,
            test_data=features.test,
            validation_data=features.validation,
            feature_manifest=features.manifest,
            threshold_policy="recall",
            target_recall=0.85,
            cost_missed_fraud=10.0,
            cost_false_alarm=1.0,
            decision_threshold=0.5,
            run_id=RUN_ID,
            round_index=0,
            metrics=outputs.metrics,
            classification_metrics=outputs.classification,
            report=outputs.report,
            evaluation=outputs.evaluation,
        )
    return outputs


def test_evaluate_model_logs_the_headline_metrics_curves_and_a_report(
    evaluated: SimpleNamespace, features: SimpleNamespace
) -> None:
    evaluation = read_json(evaluated.evaluation)
    test_rows = len(pd.read_parquet(features.test.path))

    assert evaluation["rows"] == test_rows
    assert evaluation["champion"] is None  # nothing registered yet: nothing to compare with
    assert set(evaluated.metrics.metadata) == {*HEADLINE_METRICS, "threshold"}
    for name in (*HEADLINE_METRICS, "threshold"):
        assert evaluated.metrics.metadata[name] == pytest.approx(evaluation["metrics"][name])
    classification = evaluated.classification.metadata
    assert classification["confidenceMetrics"]  # the ROC curve, point by point
    matrix = classification["confusionMatrix"]
    assert len(matrix["annotationSpecs"]) == 2  # legitimate and fraud
    assert sum(sum(row["row"]) for row in matrix["rows"]) == test_rows
    report = Path(evaluated.report.path).read_text()
    assert "<html" in report.lower() and "roc" in report.lower()


def test_evaluate_model_chooses_the_threshold_on_validation_and_measures_test_at_it(
    evaluated: SimpleNamespace, features: SimpleNamespace
) -> None:
    evaluation = read_json(evaluated.evaluation)
    choice = evaluation["threshold"]
    validation_rows = len(pd.read_parquet(features.validation.path))

    assert choice["policy"]["policy"] == "recall" and choice["policy"]["target_recall"] == 0.85
    assert choice["validation_rows"] == validation_rows  # chosen on validation, not on test
    assert choice["validation_recall"] >= 0.85
    assert evaluation["metrics"]["threshold"] == choice["threshold"]
    report = Path(evaluated.report.path).read_text()
    assert "highest threshold with validation recall &gt;= 0.85" in report
    assert f"{choice['threshold']:.4g}: precision" in report


def test_evaluate_model_refuses_a_bad_policy_naming_the_parameter(
    trained: SimpleNamespace, features: SimpleNamespace, tmp_path: Path
) -> None:
    outputs = {
        "metrics": artifact(Metrics, tmp_path, "metrics"),
        "classification_metrics": artifact(ClassificationMetrics, tmp_path, "classification"),
        "report": artifact(HTML, tmp_path, "report"),
        "evaluation": artifact(Artifact, tmp_path, "evaluation"),
    }

    with (
        kaizen_env(tmp_path / "home"),
        pytest.raises(ValueError, match=r"target_recall must be a number in \(0, 1\], got 0"),
    ):
        evaluate_model.python_func(
            model=trained.model,
            test_data=features.test,
            validation_data=features.validation,
            feature_manifest=features.manifest,
            threshold_policy="recall",
            target_recall=0.0,
            cost_missed_fraud=10.0,
            cost_false_alarm=1.0,
            decision_threshold=0.5,
            run_id="",
            round_index=0,
            **outputs,
        )

    assert not Path(outputs["evaluation"].path).exists()


# ------------------------------------------------------------------ gate_model


@pytest.fixture(scope="module")
def gate_passed(pipeline: SimpleNamespace, evaluated: SimpleNamespace) -> SimpleNamespace:
    decision = artifact(Artifact, pipeline.work, "decision")
    with kaizen_env(pipeline.home):
        verdict = gate_model.python_func(
            evaluation=evaluated.evaluation,
            min_accuracy=0.0,
            min_roc_auc=0.0,
            min_recall=0.0,
            min_precision=0.0,
            regression_tolerance=0.01,
            run_id=RUN_ID,
            round_index=0,
            decision=decision,
        )
    return SimpleNamespace(verdict=verdict, decision=decision)


def test_gate_model_passes_a_model_over_the_thresholds(gate_passed: SimpleNamespace) -> None:
    recorded = read_json(gate_passed.decision)

    assert gate_passed.verdict == "pass"
    assert gate_passed.decision.metadata == {"passed": True}
    assert recorded["passed"] is True and recorded["round"] == 0
    assert all(check["passed"] for check in recorded["checks"])
    assert "min_precision" in [check["name"] for check in recorded["checks"]]


def test_gate_model_carries_the_chosen_threshold_to_the_register_step(
    gate_passed: SimpleNamespace, evaluated: SimpleNamespace
) -> None:
    recorded = read_json(gate_passed.decision)
    threshold = read_json(evaluated.evaluation)["threshold"]

    assert recorded["threshold"] == threshold
    shown = f"at threshold {threshold['threshold']:.4g}: pass"
    assert any(r.startswith("precision") and r.endswith(shown) for r in recorded["reasons"])


def test_gate_model_fails_a_model_under_a_threshold_and_says_why(
    evaluated: SimpleNamespace, tmp_path: Path
) -> None:
    # The same evaluation, as if the model had caught one fraud in ten.
    evaluation = read_json(evaluated.evaluation)
    evaluation["metrics"]["recall"] = 0.1
    weak = artifact(Artifact, tmp_path, "evaluation")
    Path(weak.path).write_text(json.dumps(evaluation))
    decision = artifact(Artifact, tmp_path, "decision")

    with kaizen_env(tmp_path / "home"):
        verdict = gate_model.python_func(
            evaluation=weak,
            min_accuracy=0.0,
            min_roc_auc=0.0,
            min_recall=0.5,
            min_precision=0.0,
            regression_tolerance=0.01,
            run_id="",
            round_index=0,
            decision=decision,
        )

    recorded = read_json(decision)
    assert verdict == "fail"
    assert decision.metadata == {"passed": False}
    assert recorded["passed"] is False
    assert any(reason.startswith("recall 0.1") for reason in recorded["reasons"])


# ------------------------------------------------------------------ register_model


@pytest.fixture(scope="module")
def registered(
    pipeline: SimpleNamespace, trained: SimpleNamespace, gate_passed: SimpleNamespace
) -> Artifact:
    output = artifact(Artifact, pipeline.work, "registered")
    with kaizen_env(pipeline.home):
        register_model.python_func(
            model=trained.model,
            decision=gate_passed.decision,
            run_id=RUN_ID,
            round_index=0,
            registered=output,
        )
    return output


def test_register_model_registers_the_first_version_as_champion_and_challenger(
    registered: Artifact, trained: SimpleNamespace
) -> None:
    record = read_json(registered)

    assert record["version"] == 1
    assert sorted(record["aliases"]) == ["challenger", "champion"]
    assert record["sha256"] == trained.model.metadata["sha256"]
    assert registered.metadata["version"] == 1
    assert sorted(registered.metadata["aliases"].split(",")) == ["challenger", "champion"]


def test_register_model_records_the_chosen_threshold_with_the_version(
    registered: Artifact, evaluated: SimpleNamespace
) -> None:
    choice = read_json(evaluated.evaluation)["threshold"]
    tags = read_json(registered)["tags"]

    assert float(tags["kaizen.decision_threshold"]) == choice["threshold"]
    assert tags["kaizen.threshold_policy"] == "highest threshold with validation recall >= 0.85"


def test_register_model_stores_the_training_reference_the_monitor_reads(
    pipeline: SimpleNamespace, registered: Artifact, features: SimpleNamespace
) -> None:
    from kaizen.monitoring.reference import load_reference
    from kaizen.platform.settings import Settings
    from kaizen.platform.storage import open_store

    tags = read_json(registered)["tags"]
    reference = load_reference(open_store(Settings(home=pipeline.home)), tags)

    assert tags["kaizen.reference"].endswith(f"{RUN_ID}-round0.json")
    assert reference is not None and reference.score is not None
    assert list(reference.features) == read_json(features.manifest)["feature_names"]
    assert reference.rows == len(pd.read_parquet(features.train.path))


def test_register_model_again_for_the_same_run_returns_the_same_version(
    pipeline: SimpleNamespace,
    registered: Artifact,
    trained: SimpleNamespace,
    gate_passed: SimpleNamespace,
    tmp_path: Path,
) -> None:
    again = artifact(Artifact, tmp_path, "registered")

    with kaizen_env(pipeline.home):
        register_model.python_func(
            model=trained.model,
            decision=gate_passed.decision,
            run_id=RUN_ID,
            round_index=0,
            registered=again,
        )

    assert read_json(again)["version"] == read_json(registered)["version"]
    assert read_json(again)["existing"] is True


def test_register_model_refuses_a_failed_gate_decision(
    pipeline: SimpleNamespace, trained: SimpleNamespace, tmp_path: Path
) -> None:
    failed = artifact(Artifact, tmp_path, "decision")
    Path(failed.path).write_text(json.dumps({"passed": False, "reasons": ["recall 0.1 < 0.5"]}))
    output = artifact(Artifact, tmp_path, "registered")

    with kaizen_env(pipeline.home), pytest.raises(ValueError, match="refusing to register"):
        register_model.python_func(
            model=trained.model, decision=failed, run_id=RUN_ID, round_index=1, registered=output
        )

    assert not Path(output.path).exists()


# ------------------------------------------------------------------ notify_run


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with Webhook() as hook:
        yield hook


def test_notify_run_posts_how_the_run_ended_with_the_gate_outcome(
    pipeline: SimpleNamespace, registered: Artifact, webhook: Webhook, tmp_path: Path
) -> None:
    status = dsl.PipelineTaskFinalStatus(
        state="SUCCEEDED",
        pipeline_job_resource_name="kaizen-training",
        pipeline_task_name="exit-handler",
        error_code=None,
        error_message=None,
    )
    notification = artifact(Artifact, tmp_path, "notification")

    with kaizen_env(pipeline.home):
        notify_run.python_func(
            status=status, webhook_url=webhook.url, run_id=RUN_ID, notification=notification
        )

    record = read_json(notification)
    assert record["delivered"] is True
    message = record["notification"]["message"]
    assert message.startswith("run succeeded: gate passed in round 0 (roc_auc ")
    assert notification.metadata == {"state": "SUCCEEDED"}
    assert len(webhook.received) == 1
    posted = webhook.received[0]
    assert posted["state"] == "SUCCEEDED" and posted["message"] == message
    assert posted["run"] == RUN_ID


def test_notify_run_of_a_failed_run_without_a_webhook_only_records_it(tmp_path: Path) -> None:
    status = dsl.PipelineTaskFinalStatus(
        state="FAILED",
        pipeline_job_resource_name="kaizen-training",
        pipeline_task_name="exit-handler",
        error_code=9,
        error_message="train-model: out of memory",
    )
    notification = artifact(Artifact, tmp_path, "notification")

    with kaizen_env(tmp_path / "home"):
        notify_run.python_func(status=status, webhook_url="", run_id="", notification=notification)

    record = read_json(notification)
    assert record["webhook"] is None and record["delivered"] is False
    assert record["notification"]["message"] == "run failed: train-model: out of memory"
    assert notification.metadata == {"state": "FAILED"}
