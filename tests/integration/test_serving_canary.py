"""The canary on a real server: hot reload, automatic rollback and promotion, feedback, metrics.

One real KServe server process on 127.0.0.1 serves the ``ModelRouter`` over a real SQLite
registry; the tests register real Keras models into that registry while it runs, and a real
HTTP server on 127.0.0.1 receives the notifier's webhook posts.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

import pytest

from kaizen.platform.settings import Settings
from kaizen.registry import ModelRegistry
from tests.support.serving import ServerProcess, export_tiny_model, http_call, metric, register
from tests.support.webhook import Webhook

FEATURES = ["amount_zscore", "merchant_risk", "velocity_1h"]
MODEL = "fraud-detector"
VECTOR = {"amount_zscore": 0.1, "merchant_risk": -0.2, "velocity_1h": 0.0}
PREDICT = f"/v1/models/{MODEL}:predict"
MIN_REQUESTS = 60
RELOAD_INTERVAL = 0.5
EARLY_ROLLBACK_ERRORS = 10  # CanaryPolicy's default

SERVER_MODULE = "kaizen.serving.server"

T = TypeVar("T")


def challenger_note(webhook: Webhook, state: str, version: int) -> dict[str, Any] | None:
    """The notification the canary sent about challenger ``version`` ending in ``state``."""
    for note in list(webhook.received):
        if note["state"] == state and note["details"]["challenger_version"] == version:
            return note
    return None


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("canary-exports")
    return SimpleNamespace(
        champion=export_tiny_model(root / "champion", FEATURES, seed=7),
        # Trains fine, loads fine, verifies fine, and scores NaN: a diverged training run.
        diverged=export_tiny_model(root / "diverged", FEATURES, seed=7, nan_weights=True),
        better=export_tiny_model(root / "better", FEATURES, seed=11),
    )


@pytest.fixture(scope="module")
def canary(
    tmp_path_factory: pytest.TempPathFactory, exports: SimpleNamespace
) -> Iterator[SimpleNamespace]:
    home = tmp_path_factory.mktemp("canary-home")
    register(home, exports.champion, "champion-run", FEATURES)
    webhook = Webhook()
    args = [
        "--canary-share",
        "0.5",
        "--canary-min-requests",
        str(MIN_REQUESTS),
        "--reload-interval",
        str(RELOAD_INTERVAL),
    ]
    env = {"KAIZEN_WEBHOOK_URL": webhook.url}
    try:
        with ServerProcess(home, args, module=SERVER_MODULE, env=env) as server:
            yield SimpleNamespace(
                port=server.port,
                home=home,
                server=server,
                webhook=webhook,
                registry=ModelRegistry(Settings(home=home)),
            )
    finally:
        webhook.close()


def answered(port: int, version: int, variant: str, outcome: str) -> float | None:
    """Requests a variant answered with ``outcome`` while serving ``version`` (None: none)."""
    return metric(
        port,
        "kaizen_serving_requests_total",
        model_name=MODEL,
        model_version=str(version),
        variant=variant,
        outcome=outcome,
    )


def served(port: int, variant: str) -> int | None:
    """The version the variant serves (0: none; None: the gauge is not exported)."""
    value = metric(port, "kaizen_serving_model_version", model_name=MODEL, variant=variant)
    return None if value is None else int(value)


def reload_polls(port: int) -> float:
    """Polls of the registry aliases the server's hot reload has completed."""
    value = metric(port, "kaizen_serving_reload_polls_total", model_name=MODEL)
    assert value is not None, "the server exports no reload poll count"
    return value


def wait_for_polls(port: int, count: int) -> None:
    """Wait until the hot reload has polled the registry ``count`` more times."""
    target = reload_polls(port) + count
    wait_for(lambda: reload_polls(port) >= target, f"{count} more reload polls")


def predict(port: int) -> tuple[int, dict[str, Any]]:
    status, body = http_call(port, PREDICT, {"instances": [VECTOR, VECTOR]})
    return status, body


def alias(canary: SimpleNamespace, name: str) -> int | None:
    info = canary.registry.by_alias(name)
    return None if info is None else info.version


def drive_until(
    canary: SimpleNamespace, done: Callable[[], bool], limit: int
) -> list[tuple[int, Any]]:
    """Send predictions until ``done()``; returns every (status, body) seen."""
    answers = []
    while not done():
        assert len(answers) < limit, f"no canary decision after {limit} requests: {answers[-3:]}"
        for _ in range(5):
            answers.append(predict(canary.port))
    return answers


def test_a_diverged_challenger_is_hot_loaded_rolled_back_and_never_seen_by_clients(
    canary: SimpleNamespace, exports: SimpleNamespace
) -> None:
    champion = alias(canary, "champion")
    bad = register(canary.home, exports.diverged, f"diverged-{uuid.uuid4().hex[:6]}", FEATURES)
    wait_for(lambda: served(canary.port, "challenger") == bad.version, "hot reload")

    answers = drive_until(canary, lambda: alias(canary, "challenger") is None, limit=400)

    assert {status for status, _ in answers} == {200}
    assert {p["model_version"] for _, body in answers for p in body["predictions"]} == {champion}
    rejected = canary.registry.get(bad.version)
    assert "challenger" not in rejected.aliases
    assert alias(canary, "champion") == champion
    reason = rejected.tags["kaizen.rejected_reason"]
    assert "challenger error rate 100.00%" in reason
    assert rejected.tags["kaizen.rejected_by"] == "canary"
    note = wait_for(
        lambda: challenger_note(canary.webhook, "ROLLED_BACK", bad.version), "the webhook"
    )
    assert reason in note["message"]
    assert note["details"]["champion_version"] == champion
    # The challenger's failures are counted against its version, by kind.
    failed = metric(
        canary.port,
        "kaizen_serving_errors_total",
        model_name=MODEL,
        model_version=str(bad.version),
        variant="challenger",
        kind="prediction_failed",
    )
    assert failed is not None and failed >= EARLY_ROLLBACK_ERRORS
    assert (
        metric(
            canary.port,
            "kaizen_serving_canary_decisions_total",
            model_name=MODEL,
            model_version=str(bad.version),
            action="rollback",
        )
        == 1
    )
    assert served(canary.port, "challenger") == 0
    # Once withdrawn it gets no more traffic, and the hot reload does not bring it back.
    for _ in range(20):
        assert predict(canary.port)[0] == 200
    wait_for_polls(canary.port, 3)  # the hot reload looked at the registry again, 3 times
    after = answered(canary.port, bad.version, "challenger", "error")
    assert after == failed
    assert served(canary.port, "challenger") == 0


def test_a_better_challenger_is_promoted_after_min_requests_and_then_serves_everyone(
    canary: SimpleNamespace, exports: SimpleNamespace
) -> None:
    old = alias(canary, "champion")
    good = register(canary.home, exports.better, f"better-{uuid.uuid4().hex[:6]}", FEATURES)
    wait_for(lambda: served(canary.port, "challenger") == good.version, "hot reload")
    # Bad requests are the client's fault: about half reach the challenger, more than enough
    # errors for an early rollback if they counted against it.
    for _ in range(3 * EARLY_ROLLBACK_ERRORS):
        status, answer = http_call(canary.port, PREDICT, {"instances": [{"colour": 1}]})
        assert status == 400 and "unknown field(s) ['colour']" in answer["error"]

    answers = drive_until(
        canary,
        lambda: alias(canary, "champion") == good.version or alias(canary, "challenger") is None,
        limit=800,
    )

    outcome = canary.registry.get(good.version)
    assert alias(canary, "champion") == good.version, outcome.tags.get("kaizen.rejected_reason")
    assert {status for status, _ in answers} == {200}
    seen = {p["model_version"] for _, body in answers for p in body["predictions"]}
    assert seen == {old, good.version}
    challenger_ok = answered(canary.port, good.version, "challenger", "ok")
    assert challenger_ok is not None and challenger_ok >= MIN_REQUESTS
    client_errors = answered(canary.port, good.version, "challenger", "client_error")
    assert client_errors is not None and client_errors >= EARLY_ROLLBACK_ERRORS
    assert outcome.tags["kaizen.promoted_by"] == "canary"
    assert (alias(canary, "previous-champion"), alias(canary, "challenger")) == (old, None)
    # All traffic moves to the new champion.
    wait_for(
        lambda: predict(canary.port)[1]["predictions"][0]["model_version"] == good.version,
        "responses from the new champion",
    )
    for _ in range(20):
        status, body = predict(canary.port)
        assert status == 200
        assert {p["model_version"] for p in body["predictions"]} == {good.version}
    assert served(canary.port, "champion") == good.version
    assert served(canary.port, "challenger") == 0
    champion_ok = answered(canary.port, good.version, "champion", "ok")
    assert champion_ok is not None and champion_ok >= 20
    note = wait_for(
        lambda: challenger_note(canary.webhook, "SUCCEEDED", good.version), "the webhook"
    )
    assert f"promoted {MODEL} version {good.version}" in note["message"]


def test_a_champion_alias_moved_to_a_damaged_version_never_replaces_the_working_one(
    canary: SimpleNamespace, exports: SimpleNamespace
) -> None:
    from mlflow import MlflowClient

    working = alias(canary, "champion")
    damaged = register(canary.home, exports.better, f"damaged-{uuid.uuid4().hex[:6]}", FEATURES)
    stored = Path(unquote(urlparse(damaged.source).path)) / "model.keras"
    with stored.open("ab") as file:
        file.write(b"tampered")
    uri = Settings(home=canary.home).tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    # An operator (or a bad script) points the aliases straight at the damaged version.
    client.delete_registered_model_alias(MODEL, "challenger")
    client.set_registered_model_alias(MODEL, "champion", str(damaged.version))
    try:
        failures = wait_for(
            lambda: metric(
                canary.port,
                "kaizen_serving_reload_failures_total",
                model_name=MODEL,
                model_version=str(damaged.version),
                alias="champion",
            ),
            "the failed reload",
        )
        for _ in range(10):
            status, body = predict(canary.port)
            assert status == 200
            assert {p["model_version"] for p in body["predictions"]} == {working}
        # Not retried in a tight loop: eight more polls, no second attempt.
        wait_for_polls(canary.port, 8)
        again = metric(
            canary.port,
            "kaizen_serving_reload_failures_total",
            model_name=MODEL,
            model_version=str(damaged.version),
            alias="champion",
        )
        assert (failures, again) == (1, 1)
        assert served(canary.port, "champion") == working
        assert http_call(canary.port, "/v2/health/ready")[0] == 200
    finally:
        client.set_registered_model_alias(MODEL, "champion", str(working))


def test_v1_answers_name_the_served_version_in_a_header_too(canary: SimpleNamespace) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{canary.port}{PREDICT}",
        data=json.dumps({"instances": [VECTOR]}).encode(),
        headers={"Content-Type": "application/json"},
    )

    with urllib.request.urlopen(request, timeout=10) as response:
        header = response.headers["x-kaizen-model-version"]
        body = json.loads(response.read())

    assert header == str(body["predictions"][0]["model_version"])
    assert header == str(alias(canary, "champion"))


def test_v2_answers_name_the_served_version(canary: SimpleNamespace) -> None:
    request = {
        "id": "r-1",
        "inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [0, 0, 0]}],
    }

    status, body = http_call(canary.port, f"/v2/models/{MODEL}/infer", request)

    assert status == 200
    assert body["model_version"] == str(alias(canary, "champion"))
    status, metadata = http_call(canary.port, f"/v2/models/{MODEL}")
    assert status == 200
    assert metadata["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 3]}]


def test_feedback_labels_predictions_by_id_once(canary: SimpleNamespace) -> None:
    _, body = predict(canary.port)
    first, second = (p["prediction_id"] for p in body["predictions"])
    path = f"/v1/models/{MODEL}/feedback"

    status, answer = http_call(
        canary.port,
        path,
        {
            "feedback": [
                {"prediction_id": first, "is_fraud": 1},
                {"prediction_id": second, "is_fraud": False},
                {"prediction_id": "never-issued", "is_fraud": 0},
            ]
        },
    )
    again = http_call(canary.port, path, {"feedback": [{"prediction_id": first, "is_fraud": 1}]})

    assert status == 200
    assert answer == {"accepted": 2, "unknown": ["never-issued"], "stored": 3}
    assert again == (200, {"accepted": 0, "unknown": [first], "stored": 1})
    version = str(alias(canary, "champion"))
    labelled = sum(
        metric(
            canary.port,
            "kaizen_serving_feedback_total",
            model_name=MODEL,
            model_version=version,
            variant="champion",
            correct=correct,
        )
        or 0.0  # a series only appears with its first label
        for correct in ("true", "false")
    )
    assert labelled >= 2


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"feedback": [{"prediction_id": "p", "is_fraud": "yes"}]}, "feedback[0].is_fraud"),
        ({"feedback": [{"prediction_id": "p", "is_fraud": 1.0}]}, "got float 1.0"),
        (
            {"feedback": [{"prediction_id": "p", "is_fraud": 2}]},
            "expected 0 or 1 (or true/false), got int 2",
        ),
        ({"feedback": [{"is_fraud": 1}]}, "feedback[0].prediction_id: expected a non-empty"),
        ({"feedback": [{"prediction_id": "p", "is_fraud": 1, "x": 1}]}, "unknown field(s) ['x']"),
        ({"feedback": []}, "feedback: empty"),
        ({"labels": []}, "body: unknown field(s) ['labels']"),
        ([1, 2], "body: expected an object with 'feedback', got list"),
    ],
)
def test_bad_feedback_is_400_naming_the_field(
    canary: SimpleNamespace, body: Any, expected: str
) -> None:
    status, answer = http_call(canary.port, f"/v1/models/{MODEL}/feedback", body)

    assert status == 400
    assert expected in answer["error"]


def test_malformed_feedback_json_is_400(canary: SimpleNamespace) -> None:
    status, answer = http_call(canary.port, f"/v1/models/{MODEL}/feedback", raw=b'{"feedback": [')

    assert status == 400
    assert answer["error"].startswith("body: malformed JSON")
