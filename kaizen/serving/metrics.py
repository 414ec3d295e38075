"""Prometheus metrics of the model server, labelled by model name, version and variant.

They live in ``prometheus_client``'s default ``REGISTRY``, which KServe's ``/metrics``
endpoint exposes next to its own. ``variant`` is ``champion`` or ``challenger``;
``model_version`` is the registry version as text, so a canary shows one series per
version and a promotion shows the new version's series starting.

Every metric is created once, at import; the helpers below are the only writers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from prometheus_client import Counter, Gauge, Histogram

Variant = Literal["champion", "challenger"]
Outcome = Literal["ok", "client_error", "timeout", "error"]
ErrorKind = Literal["invalid_input", "timeout", "prediction_failed", "exception"]
CanaryAction = Literal["promote", "rollback"]

VARIANT_LABELS = ("model_name", "model_version", "variant")

#: Latency buckets in seconds: fine-grained over 1-100 ms, where a healthy model answers.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
#: Fraud probability buckets: tenths of [0, 1].
SCORE_BUCKETS = tuple(round(0.1 * step, 1) for step in range(11))

REQUESTS = Counter(
    "kaizen_serving_requests",
    "Inference requests handled by a model variant, by outcome.",
    [*VARIANT_LABELS, "outcome"],
)
LATENCY = Histogram(
    "kaizen_serving_request_latency_seconds",
    "Time a model variant took to answer (or fail) one request.",
    VARIANT_LABELS,
    buckets=LATENCY_BUCKETS,
)
ERRORS = Counter(
    "kaizen_serving_errors",
    "Failed requests of a model variant, by kind.",
    [*VARIANT_LABELS, "kind"],
)
SCORES = Histogram(
    "kaizen_serving_prediction_score",
    "Fraud probabilities returned by a model variant.",
    VARIANT_LABELS,
    buckets=SCORE_BUCKETS,
)
FEEDBACK = Counter(
    "kaizen_serving_feedback",
    "Labelled predictions received, by whether the variant's decision was right.",
    [*VARIANT_LABELS, "correct"],
)
SERVED_VERSION = Gauge(
    "kaizen_serving_model_version",
    "Registry version each variant serves (0: none).",
    ["model_name", "variant"],
)
CANARY_DECISIONS = Counter(
    "kaizen_serving_canary_decisions",
    "Canary decisions taken about a challenger version.",
    ["model_name", "model_version", "action", "rule"],
)
RELOAD_FAILURES = Counter(
    "kaizen_serving_reload_failures",
    "Model versions that failed to load and were not swapped in.",
    ["model_name", "model_version", "alias"],
)
RELOAD_POLLS = Counter(
    "kaizen_serving_reload_polls",
    "Polls of the registry aliases the hot reload has completed (stalls when it is stuck).",
    ["model_name"],
)


def record_request(
    model: str, version: int, variant: Variant, outcome: Outcome, seconds: float | None
) -> None:
    """Count one request and, when timed, observe its latency.

    Args:
        model: Model name.
        version: Registry version that handled it.
        variant: ``champion`` or ``challenger``.
        outcome: ``ok``, ``client_error``, ``timeout`` or ``error``.
        seconds: How long it took; None records no latency.
    """
    labels = (model, str(version), variant)
    REQUESTS.labels(*labels, outcome).inc()
    if seconds is not None:
        LATENCY.labels(*labels).observe(seconds)


def record_error(model: str, version: int, variant: Variant, kind: ErrorKind) -> None:
    """Count one failed request by kind.

    Args:
        model: Model name.
        version: Registry version that failed.
        variant: ``champion`` or ``challenger``.
        kind: ``invalid_input``, ``timeout``, ``prediction_failed`` or ``exception``.
    """
    ERRORS.labels(model, str(version), variant, kind).inc()


def record_scores(model: str, version: int, variant: Variant, scores: Iterable[float]) -> None:
    """Observe the fraud probabilities of one answer.

    Args:
        model: Model name.
        version: Registry version that produced them.
        variant: ``champion`` or ``challenger``.
        scores: The probabilities, each within [0, 1].
    """
    histogram = SCORES.labels(model, str(version), variant)
    for score in scores:
        histogram.observe(float(score))


def record_feedback(model: str, version: int, variant: Variant, correct: bool) -> None:
    """Count one labelled prediction.

    Args:
        model: Model name.
        version: Registry version that made the prediction.
        variant: The variant it was made as.
        correct: Whether its decision matched the label.
    """
    FEEDBACK.labels(model, str(version), variant, "true" if correct else "false").inc()


def set_served_version(model: str, variant: Variant, version: int | None) -> None:
    """Set the version a variant serves (None or 0: the variant is empty).

    Args:
        model: Model name.
        variant: ``champion`` or ``challenger``.
        version: Registry version, or None.
    """
    SERVED_VERSION.labels(model, variant).set(version or 0)


def record_canary_decision(model: str, version: int, action: CanaryAction, rule: str) -> None:
    """Count one promote or rollback decision about a challenger.

    Args:
        model: Model name.
        version: The challenger's registry version.
        action: ``promote`` or ``rollback``.
        rule: The rule that decided (see :class:`kaizen.serving.canary.CanaryDecision`).
    """
    CANARY_DECISIONS.labels(model, str(version), action, rule).inc()


def record_reload_failure(model: str, version: int, alias: str) -> None:
    """Count one version that failed to load during a hot reload.

    Args:
        model: Model name.
        version: The registry version that failed.
        alias: The alias it was loaded for (``champion`` or ``challenger``).
    """
    RELOAD_FAILURES.labels(model, str(version), alias).inc()


def record_reload_poll(model: str) -> None:
    """Count one completed poll of the registry aliases.

    Args:
        model: Model name.
    """
    RELOAD_POLLS.labels(model).inc()
