"""Two replicas of the server judge one challenger in opposite ways and reach one decision.

As on a cluster: two real server processes, each with its own ``KAIZEN_HOME`` (no file in
common), share one ``mlflow server`` (the registry) and one S3 bucket (moto, where decisions
are recorded), all on 127.0.0.1. Each replica gets its own feedback: one replica is told the
challenger is always right and the champion always wrong, the other the reverse, so one
judges ``promote`` and the other ``rollback`` (accuracy), at the same time. Their hot reload
is slowed to 10 minutes so that neither learns about the other through the registry: only the
recorded decision can bring them to one outcome.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kaizen.platform.settings import Settings
from kaizen.rehearsal.services import MlflowServer, S3Server
from tests.support.serving import (
    ServerProcess,
    export_tiny_model,
    http_call,
    metric,
    tiny_frame,
)
from tests.support.webhook import Webhook

FEATURES = ["amount_zscore", "merchant_risk", "velocity_1h"]
MODEL = "fraud-detector"
PREDICT = f"/v1/models/{MODEL}:predict"
FEEDBACK = f"/v1/models/{MODEL}/feedback"
MIN_REQUESTS = 60
INSTANCES = 25  # per request: 50 labels per variant (the accuracy rule's minimum) come early
REQUEST_LIMIT = 2000  # a hang guard: a replica that never decides fails the test
VECTOR = {"amount_zscore": 0.1, "merchant_risk": -0.2, "velocity_1h": 0.0}


def wait_for(check: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def register(settings: Settings, export: Path, pipeline_run: str) -> int:
    from kaizen.registry import PipelineRunTracker, register_challenger

    tracker = PipelineRunTracker(pipeline_run, settings=settings)
    data = settings.home / f"{pipeline_run}.parquet"
    settings.home.mkdir(parents=True, exist_ok=True)
    tiny_frame(10, 1, FEATURES).to_parquet(data)
    tracker.log_data(
        manifest={"feature_service": "fraud_model_v1", "feature_views": []},
        training_data=data,
        git_commit="abc123",
    )
    info = register_challenger(export, run_id=tracker.round_run_id(0), settings=settings)
    return int(info.version)


def judged(port: int, version: int) -> str | None:
    """The replica's own judgement of ``version`` (from its metrics), or None before it."""
    for action in ("promote", "rollback"):
        for rule in ("passed", "accuracy", "latency", "error_rate", "early_errors"):
            value = metric(
                port,
                "kaizen_serving_canary_decisions_total",
                model_name=MODEL,
                model_version=str(version),
                action=action,
                rule=rule,
            )
            if value:
                return action
    return None


def served(port: int, variant: str) -> int | None:
    value = metric(port, "kaizen_serving_model_version", model_name=MODEL, variant=variant)
    return None if value is None else int(value)


def drive(port: int, challenger: int, challenger_right: bool, failures: list[str]) -> None:
    """Predict and label every prediction until this replica has judged ``challenger``.

    ``challenger_right``: the labels agree with the challenger's answers and contradict the
    champion's (or the reverse).
    """
    try:
        for _ in range(REQUEST_LIMIT):
            if judged(port, challenger):
                return
            status, body = http_call(port, PREDICT, {"instances": [VECTOR] * INSTANCES})
            assert status == 200, body
            labels = []
            for prediction in body["predictions"]:
                by_challenger = prediction["model_version"] == challenger
                agree = by_challenger == challenger_right
                answer = bool(prediction["is_fraud"])
                labels.append(
                    {
                        "prediction_id": prediction["prediction_id"],
                        "is_fraud": int(answer if agree else not answer),
                    }
                )
            status, answer = http_call(port, FEEDBACK, {"feedback": labels})
            assert status == 200 and answer["unknown"] == [], answer
        raise AssertionError(f"no canary decision on port {port} after {REQUEST_LIMIT} requests")
    except BaseException as error:  # reported by the test thread
        failures.append(f"port {port}: {error!r}")


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("replica-exports")
    return SimpleNamespace(
        champion=export_tiny_model(root / "champion", FEATURES, seed=7),
        challenger=export_tiny_model(root / "challenger", FEATURES, seed=11),
    )


@pytest.fixture
def replicas(tmp_path: Path, exports: SimpleNamespace) -> Iterator[SimpleNamespace]:
    with (
        S3Server(tmp_path / "services") as s3,
        MlflowServer(tmp_path / "services", s3) as mlflow,
        Webhook() as webhook,
    ):
        setup = Settings(home=tmp_path / "setup", mlflow_tracking_uri=mlflow.url)
        champion = register(setup, exports.champion, "champion-run")
        challenger = register(setup, exports.challenger, "challenger-run")
        environment = {
            "KAIZEN_MLFLOW_TRACKING_URI": mlflow.url,
            "KAIZEN_STORAGE_BACKEND": "s3",
            "KAIZEN_S3_ENDPOINT": s3.address,
            "KAIZEN_S3_SECURE": "false",
            "KAIZEN_S3_BUCKET": s3.bucket,
            "KAIZEN_S3_REGION": s3.region,
            "KAIZEN_S3_ACCESS_KEY": s3.access_key.get_secret_value(),
            "KAIZEN_S3_SECRET_KEY": s3.secret_key.get_secret_value(),
            "KAIZEN_WEBHOOK_URL": webhook.url,
        }
        args = [
            "--canary-share",
            "0.5",
            "--canary-min-requests",
            str(MIN_REQUESTS),
            "--reload-interval",
            "600",
        ]
        with (
            ServerProcess(tmp_path / "replica-a", args, env=environment) as first,
            ServerProcess(tmp_path / "replica-b", args, env=environment) as second,
        ):
            yield SimpleNamespace(
                servers=(first, second),
                s3=s3,
                webhook=webhook,
                settings=setup,
                champion=champion,
                challenger=challenger,
            )


def test_replicas_that_judge_a_challenger_oppositely_apply_one_recorded_decision(
    replicas: SimpleNamespace,
) -> None:
    from kaizen.registry import ModelRegistry

    first, second = replicas.servers
    champion, challenger = replicas.champion, replicas.challenger
    for server in (first, second):
        assert (served(server.port, "champion"), served(server.port, "challenger")) == (
            champion,
            challenger,
        )

    failures: list[str] = []
    drivers = [
        threading.Thread(target=drive, args=(first.port, challenger, True, failures)),
        threading.Thread(target=drive, args=(second.port, challenger, False, failures)),
    ]
    for driver in drivers:
        driver.start()
    for driver in drivers:
        driver.join()
    assert failures == []

    # They judged oppositely, each from its own feedback.
    assert (judged(first.port, challenger), judged(second.port, challenger)) == (
        "promote",
        "rollback",
    )
    # One decision is recorded, once.
    client = replicas.s3.client()
    keys = [
        item.object_name
        for item in client.list_objects(replicas.s3.bucket, prefix="canary/", recursive=True)
    ]
    assert keys == [f"canary/{MODEL}/{challenger}/decision.json"]
    response = client.get_object(replicas.s3.bucket, keys[0])
    try:
        record = json.loads(response.read())
    finally:
        response.close()
        response.release_conn()
    assert (record["challenger_version"], record["champion_version"]) == (challenger, champion)
    outcome = challenger if record["action"] == "promote" else champion

    # Both replicas end up serving the recorded outcome, with no challenger left.
    for server in (first, second):
        wait_for(
            lambda server=server: (
                served(server.port, "champion") == outcome
                and served(server.port, "challenger") == 0
            ),
            f"replica on port {server.port} to serve version {outcome} alone",
        )
        status, body = http_call(server.port, PREDICT, {"instances": [VECTOR]})
        assert status == 200 and body["predictions"][0]["model_version"] == outcome

    # The replica that did not write the record says it followed it.
    follows = f"follows the decision to {record['action']} recorded by {record['decided_by']}"
    logs = [server.log_path.read_text(errors="replace") for server in (first, second)]
    assert sum(follows in log for log in logs) == 1, [log[-3000:] for log in logs]

    # The registry is in the recorded state.
    registry = ModelRegistry(replicas.settings)
    version = registry.get(challenger)
    if record["action"] == "promote":
        assert registry.alias_versions() == {"champion": challenger, "previous-champion": champion}
        assert version.tags["kaizen.promoted_by"] == "canary"
        assert "kaizen.rejected_at" not in version.tags
    else:
        assert registry.alias_versions() == {"champion": champion}
        assert version.tags["kaizen.rejected_by"] == "canary"
        assert version.tags["kaizen.rejected_reason"] == record["reason"]
        assert "kaizen.promoted_at" not in version.tags

    # One notification, from the replica that recorded the decision.
    note = wait_for(lambda: list(replicas.webhook.received), "the canary notification")
    assert len(note) == 1
    assert note[0]["details"]["action"] == record["action"]
    assert note[0]["details"]["challenger_version"] == challenger


def test_a_server_starting_after_a_recorded_decision_applies_it_instead_of_a_canary(
    tmp_path: Path, exports: SimpleNamespace
) -> None:
    from kaizen.platform.storage import open_store
    from kaizen.registry import ModelRegistry
    from kaizen.serving.canary import CanaryDecision, CanaryRecord, record_decision

    settings = Settings(home=tmp_path / "home")
    champion = register(settings, exports.champion, "champion-run")
    challenger = register(settings, exports.challenger, "challenger-run")
    # What a replica that crashed between recording its decision and moving the aliases
    # leaves behind: the record, and the version still the challenger.
    decision = CanaryDecision("rollback", "challenger p95 40.0 ms vs champion 9.0 ms", "latency")
    record, _ = record_decision(
        open_store(settings), CanaryRecord.of(MODEL, challenger, champion, decision)
    )

    with ServerProcess(settings.home, ["--canary-share", "0.5"]) as server:
        assert (served(server.port, "champion"), served(server.port, "challenger")) == (
            champion,
            0,
        )
        for _ in range(10):
            status, body = http_call(server.port, PREDICT, {"instances": [VECTOR]})
            assert status == 200 and body["predictions"][0]["model_version"] == champion
        assert "was judged already (rollback" in server.log()

    registry = ModelRegistry(settings)
    assert registry.alias_versions() == {"champion": champion}
    assert registry.get(challenger).tags["kaizen.rejected_reason"] == record.reason
