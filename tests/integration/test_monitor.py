"""``kaizen monitor --once`` on a real prediction log, real labels, a real MLflow registry and a
real HTTP receiver standing in for GitHub: drift on one feature, live recall dropping, the
gauges in the textfile, one retraining dispatched, ``kaizen status`` showing the check."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from kaizen.cli import app
from kaizen.monitoring.labels import Label, store_labels
from kaizen.monitoring.predictions import LoggedPrediction, PredictionLog
from kaizen.monitoring.reference import REFERENCE_TAG, build_reference, store_reference
from kaizen.platform.settings import Settings
from kaizen.platform.storage import LocalObjectStore
from tests.support.registry import AliasRegistry, empty_store
from tests.support.webhook import Webhook

FEATURES = ("amount_zscore", "customer__txn_count_7d", "merchant__fraud_rate_30d")
ROWS = 600


def gauges(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    values = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def reference_frame(rng: np.random.Generator, rows: int, shift: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            FEATURES[0]: rng.normal(shift, 1.0, rows),
            FEATURES[1]: rng.poisson(5, rows).astype(float),
            FEATURES[2]: rng.beta(1, 30, rows),
        }
    )


@pytest.fixture
def champion(settings: Settings, tmp_path: Path) -> tuple[AliasRegistry, int]:
    registry = AliasRegistry.create(settings, empty_store(tmp_path))
    return registry, registry.add("champion")


def log_traffic(store: LocalObjectStore, version: int, *, shift: float) -> list[str]:
    rng = np.random.default_rng(7)
    frame = reference_frame(rng, ROWS, shift)
    scores = rng.beta(2, 5, ROWS)
    when = datetime.now(UTC) - timedelta(hours=1)
    log = PredictionLog("fraud-detector", store)
    rows = [
        LoggedPrediction(
            f"p{i}",
            when,
            version,
            "champion",
            float(scores[i]),
            bool(scores[i] >= 0.5),
            tuple(float(v) for v in frame.iloc[i]),
            FEATURES,
        )
        for i in range(ROWS)
    ]
    log.record(rows)
    log.flush()
    return [row.prediction_id for row in rows]


def drifted_champion(store: LocalObjectStore, champion: tuple[AliasRegistry, int]) -> list[str]:
    """Give the champion a training reference and log traffic whose first feature drifted."""
    registry, version = champion
    rng = np.random.default_rng(1)
    reference = build_reference(reference_frame(rng, 5000, 0.0), FEATURES, rng.beta(2, 5, 2000))
    key = "monitoring/references/fraud-detector/run-1-round0.json"
    store_reference(store, key, reference.to_json())
    registry.client.set_model_version_tag(registry.name, str(version), REFERENCE_TAG, key)
    return log_traffic(store, version, shift=2.0)


def test_monitor_once_finds_the_drifted_feature_and_the_recall_drop_and_retrains_once(
    settings: Settings,
    champion: tuple[AliasRegistry, int],
    tmp_path: Path,
) -> None:
    _, version = champion
    store = LocalObjectStore(settings.object_store_dir)
    ids = drifted_champion(store, champion)
    # 200 labels: 40 frauds, labelled regardless of what the model said, so it misses most.
    label_time = datetime.now(UTC)
    store_labels(
        store,
        "fraud-detector",
        [Label(pid, int(i < 40), label_time) for i, pid in enumerate(ids[:200])],
        source="file",
    )
    token = tmp_path / "token"
    token.write_text("ghp_secret_value\n")
    metrics_file = tmp_path / "textfile" / "kaizen_monitor.prom"
    runner = CliRunner()
    with Webhook() as github, Webhook() as notifications:
        env = {
            "KAIZEN_HOME": str(settings.home),
            "KAIZEN_RETRAIN_TARGET": "github",
            "KAIZEN_RETRAIN_GITHUB_REPOSITORY": "acme/kaizen",
            "KAIZEN_RETRAIN_GITHUB_TOKEN_FILE": str(token),
            "KAIZEN_RETRAIN_GITHUB_API_URL": github.url.removesuffix("/hooks/kaizen"),
            "KAIZEN_WEBHOOK_URL": notifications.url,
        }
        args = ["monitor", "--once", "--metrics-file", str(metrics_file)]
        first = runner.invoke(app, args, env=env)
        assert first.exit_code == 0, first.output
        second = runner.invoke(app, args, env=env)
        assert second.exit_code == 0, second.output
        dispatched = list(github.received)
        notified = [n["event"] for n in notifications.received]

    assert "BREACH feature_drift" in first.output and "BREACH live_recall" in first.output
    assert "retraining (github): started" in first.output
    assert "retraining (github): duplicate" in second.output
    assert len(dispatched) == 1 and dispatched[0]["event_type"] == "drift-detected"
    assert notified == ["drift_detected", "retraining_started"]
    assert "ghp_secret_value" not in first.output + second.output

    model = ("model", "fraud-detector")
    values = gauges(metrics_file)
    psi = {f: values[("kaizen_monitor_feature_psi", (("feature", f), model))] for f in FEATURES}
    assert psi[FEATURES[0]] > 0.2
    assert psi[FEATURES[1]] < 0.1 and psi[FEATURES[2]] < 0.1
    assert values[("kaizen_monitor_feature_ks_pvalue", (("feature", FEATURES[0]), model))] < 1e-6
    assert values[("kaizen_monitor_score_psi", (model,))] < 0.1
    assert values[("kaizen_monitor_labelled_predictions", (model,))] == 200
    assert values[("kaizen_monitor_live_metric", (("metric", "recall"), model))] < 0.5
    assert values[("kaizen_monitor_breach", (("check", "feature_drift"), model))] == 1
    assert values[("kaizen_monitor_breach", (("check", "live_recall"), model))] == 1
    assert values[("kaizen_monitor_breach", (("check", "score_drift"), model))] == 0
    assert values[("kaizen_monitor_last_run_timestamp_seconds", (model,))] > 0
    assert values[("kaizen_monitor_retrainings_total", (model, ("target", "github")))] == 1

    status = runner.invoke(app, ["status"], env={"KAIZEN_HOME": str(settings.home)})
    assert status.exit_code == 0, status.output
    line = next(row for row in status.output.splitlines() if row.startswith("monitoring"))
    assert f"of v{version}" in line and "feature_drift" in line and "live_recall" in line

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    experiment = client.get_experiment_by_name("monitoring")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2
    assert runs[0].data.metrics[f"psi.{FEATURES[0]}"] > 0.2
    assert runs[0].data.metrics["breach.live_recall"] == 1.0


def test_a_version_without_a_reference_is_judged_on_live_metrics_only(
    settings: Settings, champion: tuple[AliasRegistry, int], tmp_path: Path
) -> None:
    _, version = champion
    store = LocalObjectStore(settings.object_store_dir)
    log_traffic(store, version, shift=2.0)
    metrics_file = tmp_path / "monitor.prom"
    result = CliRunner().invoke(
        app,
        ["monitor", "--once", "--no-mlflow", "--metrics-file", str(metrics_file)],
        env={"KAIZEN_HOME": str(settings.home)},
    )
    assert result.exit_code == 0, result.output
    assert "registered without a training reference" in result.output
    assert "not enough to judge live metrics" in result.output
    assert "no breach" in result.output
    values = gauges(metrics_file)
    assert not any(name == "kaizen_monitor_feature_psi" for name, _ in values)
    assert (
        values[("kaizen_monitor_breach", (("check", "feature_drift"), ("model", "fraud-detector")))]
        == 0
    )


def test_monitor_without_a_champion_says_so(settings: Settings, tmp_path: Path) -> None:
    AliasRegistry.create(settings, empty_store(tmp_path))
    result = CliRunner().invoke(app, ["monitor", "--once"], env={"KAIZEN_HOME": str(settings.home)})
    assert result.exit_code == 1
    assert "has no champion to monitor" in result.output


def _load_fake_kfp_api() -> ModuleType:
    # The contract tests' stand-in KFP API (checks every request against KFP's swagger).
    path = Path(__file__).resolve().parents[1] / "contract" / "fake_kfp_api.py"
    spec = importlib.util.spec_from_file_location("fake_kfp_api", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fake_kfp_api", module)
    spec.loader.exec_module(module)
    return module


def test_the_kfp_target_submits_one_retrain_run_named_after_the_data(
    settings: Settings, champion: tuple[AliasRegistry, int], tmp_path: Path
) -> None:
    from kaizen.pipeline.fingerprint import synthetic_fingerprint

    store = LocalObjectStore(settings.object_store_dir)
    drifted_champion(store, champion)
    token = "eyJhbGciOiJSUzI1NiJ9.kaizen-monitor-test.c2lnbmF0dXJl"
    token_file = tmp_path / "kfp-token"
    token_file.write_text(token + "\n")
    runner = CliRunner()
    with _load_fake_kfp_api().FakeKfpApi(token=token) as kfp:
        env = {
            "KAIZEN_HOME": str(settings.home),
            "KAIZEN_KFP_HOST": kfp.url,
            "KAIZEN_KFP_TOKEN_FILE": str(token_file),
            "KAIZEN_RETRAIN_TARGET": "kfp",
        }
        uploaded = runner.invoke(app, ["upload"], env=env)
        assert uploaded.exit_code == 0, uploaded.output
        for _ in range(2):
            result = runner.invoke(app, ["monitor", "--once", "--no-mlflow"], env=env)
            assert result.exit_code == 0, result.output
        runs = [run["display_name"] for run in kfp.runs]
        assert kfp.self_check_errors == []
    assert runs == [f"retrain-{synthetic_fingerprint({})}"]
    assert "retraining (kfp): duplicate" in result.output


def test_the_loop_serves_the_gauges_on_loopback_and_stops_on_sigterm(
    settings: Settings, champion: tuple[AliasRegistry, int]
) -> None:
    import os
    import signal
    import socket
    import subprocess
    import time
    import urllib.request

    drifted_champion(LocalObjectStore(settings.object_store_dir), champion)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kaizen.cli",
            "monitor",
            "--interval",
            "1",
            "--no-mlflow",
            "--metrics-port",
            str(port),
        ],
        env={**os.environ, "KAIZEN_HOME": str(settings.home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        body = ""
        while "kaizen_monitor_last_run_timestamp_seconds{" not in body:
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, f"no check served within 120 s: {body}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    body = r.read().decode()
            except OSError:
                body = ""  # not listening yet
            if "kaizen_monitor_last_run_timestamp_seconds{" not in body:
                time.sleep(0.2)  # the poll's pace; the deadline above is the wait
        assert 'kaizen_monitor_breach{check="feature_drift",model="fraud-detector"} 1.0' in body
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert f"gauges on http://127.0.0.1:{port}/metrics" in output.decode()


def test_the_local_target_runs_kaizen_run_on_the_configured_source(tmp_path: Path) -> None:
    """The subprocess is a real ``kaizen run``: given a source that is not there, its log
    shows the pipeline's ingest step refusing exactly that file (the full retraining on real
    data is the end-to-end scenario's)."""
    import time

    from kaizen.monitoring.monitor import Breach, MonitorReport
    from kaizen.monitoring.trigger import local_starter, on_breaches

    missing = tmp_path / "landed" / "transactions.csv"
    settings = Settings(
        home=tmp_path / "home", retrain_target="local", retrain_source_uri=str(missing)
    )
    report = MonitorReport(
        model="fraud-detector",
        version=1,
        checked_at=datetime.now(UTC).isoformat(),
        predictions=300,
        breaches=[Breach("score_drift", "score PSI 0.400 above 0.2")],
    )
    outcome = on_breaches(
        report,
        settings=settings,
        store=LocalObjectStore(settings.object_store_dir),
        fingerprint="c" * 64,
        starter=local_starter(settings),
    )
    assert outcome.status == "started" and "kaizen run (pid" in outcome.detail
    log = settings.logs_dir / f"retrain-{'c' * 64}.log"
    deadline = time.monotonic() + 900  # a loaded machine imports TensorFlow slowly
    text = ""
    # Compared without white space: the console wraps long paths in the log.
    while "error:runfailed" not in "".join(text.split()):
        assert time.monotonic() < deadline, f"kaizen run did not end: {text}"
        time.sleep(0.5)  # the poll's pace; the deadline above is the wait
        text = log.read_text() if log.exists() else ""
    joined = "".join(text.split())
    assert "kaizen run" in text and "ingest-data" in text
    assert "DataSourceError:datafilenotfound:" in joined, text
    assert "".join(str(missing).split()) in joined, text
