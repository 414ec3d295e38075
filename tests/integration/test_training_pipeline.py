"""The whole training pipeline, compiled YAML on kfp.local, on small data.

These run real subprocesses per task (the SubprocessRunner), a real Feast repo, real
TensorFlow training and a real webhook server on 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kaizen.pipeline.compiler import TRAINING_PIPELINE_YAML
from kaizen.pipeline.runner import RunResult, run_pipeline
from kaizen.pipeline.summary import summarize_run
from kaizen.platform.settings import Settings
from tests.support.webhook import Webhook

SMALL = {
    "rows": 6000,
    "customers": 120,
    "merchants": 30,
    "days": 24,
    "validation_days": 4,
    "test_days": 4,
    "warmup_days": 7,
    "epochs": 4,
    "patience": 2,
    "units": 32,
    "max_trial_count": 2,
    "parallel_trial_count": 2,
}
EXPECTED_TASKS = {
    "ingest-data",
    "build-features",
    "tune-model",
    "train-model",
    "evaluate-model",
    "gate-model",
    "register-model",
    "deploy-model",
    "notify-run",
}


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with Webhook() as hook:
        yield hook


def _run(repo_root: Path, settings: Settings, **params: Any) -> RunResult:
    arguments = {**SMALL, "feature_repo": str(repo_root / "feature_repo"), **params}
    return run_pipeline(TRAINING_PIPELINE_YAML, arguments, settings)


def test_kaizen_run_cli_runs_every_step_and_prints_the_summary(
    repo_root: Path, kaizen_home: Path
) -> None:
    params = [f"-p{name}={value}" for name, value in SMALL.items()]
    completed = subprocess.run(
        [sys.executable, "-m", "kaizen.cli", "run", *params, "-pmin_roc_auc=0.5"],
        cwd=repo_root,
        env={**os.environ, "KAIZEN_HOME": str(kaizen_home), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    out = completed.stdout
    for task in EXPECTED_TASKS:
        assert f"✔ {task}" in out
    assert "SUCCEEDED" in out
    assert "gate" in out and "PASS" in out
    assert "roc_auc" in out and "fraud_model_v1" in out
    assert "tuning" in out and "best fraud-mlp-tpe-" in out
    assert "tune-model-2" not in out  # the gate passed: no re-tune round
    assert "fraud-detector v1 (champion, challenger)" in out  # the first model is champion
    reports = list((kaizen_home / "reports").glob("run-*.html"))
    assert len(reports) == 1 and str(reports[0]) in out


@pytest.mark.slow
def test_failing_gate_retunes_then_skips_publish_and_says_why(
    repo_root: Path, webhook: Webhook, settings: Settings
) -> None:
    result = _run(
        repo_root, settings, min_roc_auc=1.0, epochs=1, retune_rounds=1, webhook_url=webhook.url
    )
    assert result.succeeded, result.error
    for task in ("tune-model-2", "train-model-2", "evaluate-model-2", "gate-model-2"):
        assert result.tasks[task].state == "SUCCESS"  # one re-tune round on the wide space
    assert "tune-model-3" not in result.tasks  # bounded by retune_rounds
    summary = summarize_run(result)
    assert summary.rounds == 2
    assert summary.tuning[1]["name"].startswith("fraud-mlp-tpe-wide-")
    assert summary.gate["passed"] is False
    assert any("roc_auc" in reason and "fail" in reason for reason in summary.gate["reasons"])
    assert not any(task.startswith(("register-model", "deploy-model")) for task in result.tasks)
    from kaizen.registry import champion

    assert champion(settings) is None  # nothing registered
    assert [note["state"] for note in webhook.received] == ["SUCCEEDED"]
    message = webhook.received[0]["message"]
    assert message.startswith("gate failed after 2 round(s), model not registered")
    assert "best reached in round" in message and "roc_auc" in message
    assert len(webhook.received[0]["details"]["gate_rounds"]) == 2
    # The report a person opens holds the metrics the last gate judged.
    report = Path(summary.report or "").read_text()
    assert f"{summary.metrics['roc_auc']:.4f}" in report


def test_two_runs_champion_then_challenger_with_lineage(
    repo_root: Path, kaizen_home: Path, settings: Settings
) -> None:
    from kaizen.registry import challenger, champion, lineage, status

    first = _run(repo_root, settings, min_roc_auc=0.5)
    assert first.succeeded, first.error
    one = summarize_run(first)
    assert one.registered["version"] == 1
    assert sorted(one.registered["aliases"]) == ["challenger", "champion"]
    assert one.gate["champion"] is None  # first model: thresholds alone
    assert not any(check["name"].startswith("no_regression") for check in one.gate["checks"])
    # The operating threshold: chosen on validation, gated on at test, recorded with v1.
    chosen = one.gate["threshold"]
    assert chosen["policy"]["policy"] == "recall" and chosen["validation_recall"] >= 0.85
    assert float(one.registered["tags"]["kaizen.decision_threshold"]) == chosen["threshold"]
    assert "min_precision" in [check["name"] for check in one.gate["checks"]]
    # Without a server the deploy step records what a `kaizen serve` would pick up.
    deployed = first.json_artifact("deploy-model", "deployment") or {}
    assert (deployed["alias"], deployed["version"], deployed["status"]) == (
        "champion",
        1,
        "recorded",
    )

    second = _run(repo_root, settings, min_roc_auc=0.5, regression_tolerance=0.05)
    assert second.succeeded, second.error
    two = summarize_run(second)
    # The gate compared the candidate with champion v1 on the same fresh test window.
    assert two.gate["champion"]["version"] == 1 and two.gate["champion"]["comparable"]
    comparison = [c for c in two.gate["checks"] if c["name"] == "no_regression_roc_auc"]
    assert comparison and comparison[0]["passed"]
    assert "champion v1" in comparison[0]["reason"]
    assert two.registered["version"] == 2 and two.registered["aliases"] == ["challenger"]
    deployed = second.json_artifact("deploy-model", "deployment") or {}
    assert (deployed["alias"], deployed["version"]) == ("challenger", 2)
    assert champion(settings).version == 1  # type: ignore[union-attr]  # promotion is a decision
    assert challenger(settings).version == 2  # type: ignore[union-attr]

    # One id per run: the id of the summary, report and log is the one MLflow, the registry
    # and `kaizen status` know the run by.
    assert one.registered["pipeline_run_id"] == first.run_id
    assert two.registered["pipeline_run_id"] == second.run_id
    assert first.log_path.name == f"run-{first.run_id}.log"
    chain = lineage(2, settings=settings)
    assert chain["pipeline_run_id"] == second.run_id
    assert chain["features"]["service"] == "fraud_model_v1"
    assert chain["tuning"]["katib_experiment"].startswith("fraud-mlp-tpe-")
    assert chain["data"]["fingerprint"] and chain["data"]["windows"]["test"]
    runs = status(settings=settings)["recent_runs"]
    assert [run["registered_version"] for run in runs[:2]] == [2, 1]
    assert [run["pipeline_run_id"] for run in runs[:2]] == [second.run_id, first.run_id]

    # The same, as a person sees it on the command line.
    from typer.testing import CliRunner

    from kaizen.cli import app

    cli = CliRunner()
    shown = cli.invoke(app, ["status"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "champion           v1" in shown.output and "challenger         v2" in shown.output
    assert first.run_id in shown.output and second.run_id in shown.output
    traced = cli.invoke(app, ["lineage", "2"], env={"COLUMNS": "200"})
    assert traced.exit_code == 0 and "fraud-detector v2 (challenger)" in traced.output
    assert two.registered["pipeline_run_id"] in traced.output
    promoted = cli.invoke(app, ["promote", "2"])
    assert promoted.exit_code == 0 and "champion is now v2 (was v1)" in promoted.output
    assert champion(settings).version == 2  # type: ignore[union-attr]
    restored = cli.invoke(app, ["rollback"])
    assert restored.exit_code == 0 and "champion restored to v1" in restored.output
    assert champion(settings).version == 1  # type: ignore[union-attr]
    missing = cli.invoke(app, ["promote", "9"])
    assert missing.exit_code == 1 and "9" in missing.output


def test_bad_data_stops_before_the_feature_store_and_reports_why(
    repo_root: Path, kaizen_home: Path, tmp_path: Path, webhook: Webhook, settings: Settings
) -> None:
    bad = tmp_path / "transactions.csv"
    pd.DataFrame(
        {
            "transaction_id": ["t1", "t2", "t2"],
            "customer_id": ["c1", None, "c3"],
            "merchant_id": ["m1", "m1", "m2"],
            "amount": [10.0, 20.0, 30.0],
            "event_timestamp": ["2026-01-01T10:00:00Z"] * 3,
            "is_fraud": [0, 2, 1],
        }
    ).to_csv(bad, index=False)
    result = _run(repo_root, settings, source_uri=str(bad), webhook_url=webhook.url)
    assert not result.succeeded
    assert result.tasks["ingest-data"].state == "FAILURE"
    assert "build-features" not in result.tasks
    message = result.error or ""
    assert "3 failing checks" in message
    for check in ("unique [transaction_id]", "not_null [customer_id]", "[is_fraud]"):
        assert check in message
    assert not (kaizen_home / "feast").exists() or not any(
        (kaizen_home / "feast").rglob("*.parquet")
    )
    assert [note["state"] for note in webhook.received] == ["FAILED"]
