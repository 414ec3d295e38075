"""Serving metrics, read back from prometheus_client's default registry (what /metrics shows)."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import REGISTRY, generate_latest

from kaizen.serving import metrics


@pytest.fixture
def model() -> str:
    """A model name no other test uses: the default registry is process-wide."""
    return f"model-{uuid.uuid4().hex[:8]}"


def value(name: str, **labels: str) -> float | None:
    """The sample's value, or None when no such series is exported: absent is not zero."""
    return REGISTRY.get_sample_value(name, labels)


def test_requests_are_counted_per_version_variant_and_outcome(model: str) -> None:
    metrics.record_request(model, 3, "champion", "ok", 0.004)
    metrics.record_request(model, 3, "champion", "ok", 0.012)
    metrics.record_request(model, 4, "challenger", "timeout", 2.0)
    metrics.record_request(model, 3, "champion", "client_error", None)

    champion = {"model_name": model, "model_version": "3", "variant": "champion"}
    challenger = {"model_name": model, "model_version": "4", "variant": "challenger"}
    assert value("kaizen_serving_requests_total", **champion, outcome="ok") == 2
    assert value("kaizen_serving_requests_total", **champion, outcome="client_error") == 1
    assert value("kaizen_serving_requests_total", **challenger, outcome="timeout") == 1
    # No request of that kind: no series at all (a dashboard shows no line, not a zero).
    assert value("kaizen_serving_requests_total", **challenger, outcome="ok") is None
    # Latency only for timed requests: the client error was not observed.
    assert value("kaizen_serving_request_latency_seconds_count", **champion) == 2
    assert value("kaizen_serving_request_latency_seconds_sum", **champion) == pytest.approx(0.016)
    assert value("kaizen_serving_request_latency_seconds_bucket", **champion, le="0.005") == 1
    assert value("kaizen_serving_request_latency_seconds_bucket", **champion, le="0.015") == 2
    assert value("kaizen_serving_request_latency_seconds_bucket", **challenger, le="1.0") == 0


def test_latency_buckets_resolve_the_1_to_100_ms_range() -> None:
    in_range = [b for b in metrics.LATENCY_BUCKETS if 0.001 <= b <= 0.1]

    assert len(in_range) >= 10
    assert in_range[0] == 0.001 and in_range[-1] == 0.1


def test_errors_are_counted_by_kind(model: str) -> None:
    metrics.record_error(model, 4, "challenger", "prediction_failed")
    metrics.record_error(model, 4, "challenger", "prediction_failed")
    metrics.record_error(model, 3, "champion", "timeout")

    labels = {"model_name": model, "model_version": "4", "variant": "challenger"}
    assert value("kaizen_serving_errors_total", **labels, kind="prediction_failed") == 2
    assert value("kaizen_serving_errors_total", **labels, kind="timeout") is None
    assert (
        value(
            "kaizen_serving_errors_total",
            model_name=model,
            model_version="3",
            variant="champion",
            kind="timeout",
        )
        == 1
    )


def test_scores_fall_into_tenths_of_zero_to_one(model: str) -> None:
    metrics.record_scores(model, 3, "champion", [0.05, 0.15, 0.95, 1.0])

    labels = {"model_name": model, "model_version": "3", "variant": "champion"}
    assert value("kaizen_serving_prediction_score_count", **labels) == 4
    assert value("kaizen_serving_prediction_score_bucket", **labels, le="0.1") == 1
    assert value("kaizen_serving_prediction_score_bucket", **labels, le="0.2") == 2
    assert value("kaizen_serving_prediction_score_bucket", **labels, le="0.9") == 2
    assert value("kaizen_serving_prediction_score_bucket", **labels, le="1.0") == 4


def test_the_served_version_gauge_follows_each_variant(model: str) -> None:
    metrics.set_served_version(model, "champion", 3)
    metrics.set_served_version(model, "challenger", 4)
    metrics.set_served_version(model, "champion", 4)
    metrics.set_served_version(model, "challenger", None)

    assert value("kaizen_serving_model_version", model_name=model, variant="champion") == 4
    assert value("kaizen_serving_model_version", model_name=model, variant="challenger") == 0


def test_canary_decisions_feedback_and_reload_failures_are_counted(model: str) -> None:
    metrics.record_canary_decision(model, 4, "rollback", "early_errors")
    metrics.record_feedback(model, 4, "challenger", correct=False)
    metrics.record_feedback(model, 4, "challenger", correct=True)
    metrics.record_reload_failure(model, 5, "challenger")
    metrics.record_reload_failure(model, 5, "challenger")

    assert (
        value(
            "kaizen_serving_canary_decisions_total",
            model_name=model,
            model_version="4",
            action="rollback",
            rule="early_errors",
        )
        == 1
    )
    labels = {"model_name": model, "model_version": "4", "variant": "challenger"}
    assert value("kaizen_serving_feedback_total", **labels, correct="false") == 1
    assert value("kaizen_serving_feedback_total", **labels, correct="true") == 1
    assert (
        value(
            "kaizen_serving_reload_failures_total",
            model_name=model,
            model_version="5",
            alias="challenger",
        )
        == 2
    )


def test_reload_polls_are_counted_per_model(model: str) -> None:
    assert value("kaizen_serving_reload_polls_total", model_name=model) is None

    metrics.record_reload_poll(model)
    metrics.record_reload_poll(model)

    assert value("kaizen_serving_reload_polls_total", model_name=model) == 2


def test_the_exposition_text_names_the_version_and_variant(model: str) -> None:
    metrics.record_request(model, 7, "challenger", "ok", 0.003)

    text = generate_latest(REGISTRY).decode()

    # prometheus_client sorts labels by name in the text format.
    assert (
        f'kaizen_serving_requests_total{{model_name="{model}",model_version="7",'
        f'outcome="ok",variant="challenger"}} 1.0'
    ) in text.splitlines()
