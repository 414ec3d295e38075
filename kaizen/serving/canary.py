"""Canary judgement: compare a challenger's live record with the champion's and decide.

Pure Python (no KServe, no TensorFlow): :class:`~kaizen.serving.router.ModelRouter` feeds
one :class:`VariantStats` per variant and asks :func:`judge` after every request.

The rules, in the order they are applied:

1. **Early rollback.** A challenger that fails often is rolled back before it has
   ``min_requests``: once it has at least ``early_rollback_errors`` errors *and* its error
   rate exceeds the champion's by more than ``max_error_rate_increase``. The absolute count
   keeps one unlucky error in the first few requests from deciding anything, and the rate
   keeps a busy challenger with a normal error rate from being caught by the count alone.
   A challenger that fails every request is therefore gone after ``early_rollback_errors``
   requests, however large ``min_requests`` is.
2. **Wait** until both variants have ``min_requests`` requests (successes plus errors).
3. **Error rate**: roll back if the challenger's exceeds the champion's by more than
   ``max_error_rate_increase`` (absolute, 0.01 = one percentage point).
4. **Latency**: roll back if the challenger's p95 exceeds
   ``champion p95 * max_p95_ratio + p95_slack_seconds``. The slack keeps microsecond noise
   between two fast models from failing a canary: 1.5 x 0.8 ms is not a regression anyone
   would notice, 0.8 ms + 5 ms would be.
5. **Accuracy**, only when both variants have ``min_feedback`` labelled predictions: roll
   back if the challenger's accuracy is more than ``max_accuracy_drop`` below the champion's.
6. Otherwise **promote**.

Every limit is inclusive: a challenger exactly at a limit passes it.

**One decision for several replicas.** Each replica of a server judges from its own traffic
and feedback, so two replicas may judge the same challenger differently. The first decision
about a challenger version is recorded once, in a write-once object at
``canary/<model>/<challenger version>/decision.json`` (:func:`record_decision`): the object
store refuses a second write of a versioned key, also between hosts (S3's conditional write
``If-None-Match: *``, a hard link on a local disk). Whoever wrote it applies it; every other
replica reads it back and applies *it*, not its own judgement. The alias moves are
idempotent (:meth:`kaizen.registry.models.ModelRegistry.apply_canary_decision`), so however
many replicas apply a decision, the registry ends in the one recorded state.
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
from collections import deque
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from kaizen.platform.storage import ObjectStore

Action = Literal["wait", "promote", "rollback"]
FinalAction = Literal["promote", "rollback"]

#: Folder of the decision records in the object store.
DECISIONS_PREFIX = "canary"
DECISION_FILE = "decision.json"

DEFAULT_LATENCY_WINDOW = 2048


@dataclass(frozen=True)
class CanaryPolicy:
    """When a challenger is judged, and what makes it fail.

    Attributes:
        share: Fraction of requests routed to the challenger, in (0, 1).
        min_requests: Requests each variant needs before the challenger is judged.
        max_error_rate_increase: Largest allowed challenger error rate minus the
            champion's (0.01 = one percentage point).
        max_p95_ratio: Largest allowed challenger p95 latency as a multiple of the
            champion's (before the slack is added).
        p95_slack_seconds: Absolute latency allowed on top of the ratio.
        min_feedback: Labelled predictions each variant needs before accuracy counts.
        max_accuracy_drop: Largest allowed champion accuracy minus the challenger's.
        early_rollback_errors: Challenger errors that allow a rollback before
            ``min_requests`` (see the module docstring).
        latency_window: Most recent latencies kept per variant for the p95.

    Raises:
        ValueError: a value out of range, naming the field, the range and the value.
    """

    share: float = 0.1
    min_requests: int = 200
    max_error_rate_increase: float = 0.01
    max_p95_ratio: float = 1.5
    p95_slack_seconds: float = 0.005
    min_feedback: int = 50
    max_accuracy_drop: float = 0.02
    early_rollback_errors: int = 10
    latency_window: int = DEFAULT_LATENCY_WINDOW

    def __post_init__(self) -> None:
        problems = []
        if not _finite(self.share) or not 0.0 < self.share < 1.0:
            problems.append(f"share must be within (0, 1) exclusive, got {self.share!r}")
        for name, minimum in (
            ("min_requests", 1),
            ("min_feedback", 1),
            ("early_rollback_errors", 1),
            ("latency_window", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                problems.append(f"{name} must be an integer >= {minimum}, got {value!r}")
        for name in ("max_error_rate_increase", "max_accuracy_drop"):
            value = getattr(self, name)
            if not _finite(value) or not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be within [0, 1], got {value!r}")
        if not _finite(self.max_p95_ratio) or self.max_p95_ratio < 1.0:
            problems.append(f"max_p95_ratio must be a number >= 1, got {self.max_p95_ratio!r}")
        if not _finite(self.p95_slack_seconds) or self.p95_slack_seconds < 0.0:
            problems.append(
                f"p95_slack_seconds must be a number >= 0, got {self.p95_slack_seconds!r}"
            )
        if problems:
            raise ValueError("invalid canary policy: " + "; ".join(problems))


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class VariantStats:
    """What one variant did during a canary: requests, errors, latencies, feedback.

    Safe to update from the event loop while another thread judges. Memory is bounded:
    only the last ``latency_window`` latencies are kept (the p95 is over those).

    Args:
        latency_window: How many recent latencies to keep.
    """

    def __init__(self, latency_window: int = DEFAULT_LATENCY_WINDOW) -> None:
        if latency_window < 1:
            raise ValueError(f"latency_window must be >= 1, got {latency_window}")
        self._lock = threading.Lock()
        self._latencies: deque[float] = deque(maxlen=latency_window)
        self._requests = 0
        self._errors = 0
        self._feedback_correct = 0
        self._feedback_total = 0

    def record_success(self, seconds: float) -> None:
        """Count one answered request and its latency.

        Args:
            seconds: How long the variant took.
        """
        with self._lock:
            self._requests += 1
            self._latencies.append(float(seconds))

    def record_error(self) -> None:
        """Count one request the variant failed (timeout, bad score, exception)."""
        with self._lock:
            self._requests += 1
            self._errors += 1

    def record_feedback(self, correct: bool) -> None:
        """Count one labelled prediction.

        Args:
            correct: Whether the variant's decision matched the label.
        """
        with self._lock:
            self._feedback_total += 1
            self._feedback_correct += int(bool(correct))

    @property
    def requests(self) -> int:
        """Requests the variant handled (successes and errors, not client errors)."""
        return self._requests

    @property
    def errors(self) -> int:
        """Requests the variant failed."""
        return self._errors

    @property
    def error_rate(self) -> float:
        """``errors / requests`` (0 before any request)."""
        with self._lock:
            return self._errors / self._requests if self._requests else 0.0

    @property
    def feedback_total(self) -> int:
        """Labelled predictions received."""
        return self._feedback_total

    @property
    def feedback_correct(self) -> int:
        """Labelled predictions whose decision matched the label."""
        return self._feedback_correct

    @property
    def accuracy(self) -> float | None:
        """Share of labelled predictions that were right (None without feedback)."""
        with self._lock:
            if not self._feedback_total:
                return None
            return self._feedback_correct / self._feedback_total

    def p95(self) -> float | None:
        """95th percentile latency in seconds over the window (nearest rank), or None."""
        with self._lock:
            values = sorted(self._latencies)
        if not values:
            return None
        rank = max(1, math.ceil(0.95 * len(values)))
        return values[rank - 1]


@dataclass(frozen=True)
class CanaryDecision:
    """What to do with the challenger now.

    Attributes:
        action: ``wait``, ``promote`` or ``rollback``.
        reason: The numbers that decided it, in words.
        rule: Which rule decided (``waiting``, ``early_errors``, ``error_rate``,
            ``latency``, ``accuracy``, ``passed``): a short, fixed label for metrics.
    """

    action: Action
    reason: str
    rule: str = ""


def _rate(stats: VariantStats) -> str:
    return f"{stats.error_rate:.2%} ({stats.errors} of {stats.requests})"


def _error_rate_exceeded(
    champion: VariantStats, challenger: VariantStats, policy: CanaryPolicy
) -> str | None:
    increase = challenger.error_rate - champion.error_rate
    # A tiny tolerance so that a difference exactly at the limit passes despite float error.
    if increase > policy.max_error_rate_increase + 1e-12:
        return (
            f"challenger error rate {_rate(challenger)} exceeds the champion's "
            f"{_rate(champion)} by {increase:.2%}, more than the allowed "
            f"{policy.max_error_rate_increase:.2%}"
        )
    return None


def judge(champion: VariantStats, challenger: VariantStats, policy: CanaryPolicy) -> CanaryDecision:
    """Decide whether to wait, promote or roll back the challenger.

    Args:
        champion: The champion's record over the canary.
        challenger: The challenger's record over the canary.
        policy: The limits (see :class:`CanaryPolicy` and the module docstring).

    Returns:
        The decision, with a reason naming the numbers that decided it.
    """
    if challenger.errors >= policy.early_rollback_errors:
        exceeded = _error_rate_exceeded(champion, challenger, policy)
        if exceeded is not None:
            return CanaryDecision(
                "rollback",
                f"{exceeded} after {challenger.errors} errors (early rollback at "
                f"{policy.early_rollback_errors})",
                "early_errors",
            )
    if champion.requests < policy.min_requests or challenger.requests < policy.min_requests:
        return CanaryDecision(
            "wait",
            f"waiting for {policy.min_requests} requests per variant: champion has "
            f"{champion.requests}, challenger {challenger.requests}",
            "waiting",
        )
    exceeded = _error_rate_exceeded(champion, challenger, policy)
    if exceeded is not None:
        return CanaryDecision("rollback", exceeded, "error_rate")

    champion_p95, challenger_p95 = champion.p95(), challenger.p95()
    latency = ""
    if champion_p95 is not None and challenger_p95 is not None:
        limit = champion_p95 * policy.max_p95_ratio + policy.p95_slack_seconds
        latency = (
            f"p95 {challenger_p95 * 1000:.1f} ms vs champion {champion_p95 * 1000:.1f} ms "
            f"(limit {limit * 1000:.1f} ms)"
        )
        if challenger_p95 > limit + 1e-12:
            return CanaryDecision(
                "rollback",
                f"challenger {latency}: above {policy.max_p95_ratio:g} x the champion's p95 "
                f"+ {policy.p95_slack_seconds * 1000:g} ms",
                "latency",
            )
    elif challenger_p95 is None:
        # Every challenger request failed, yet the error rule passed: the champion failed
        # as often. Nothing shows the challenger is better, so it does not replace it.
        return CanaryDecision(
            "rollback",
            f"challenger answered none of its {challenger.requests} requests "
            f"(error rate {_rate(challenger)})",
            "error_rate",
        )

    accuracy = "accuracy not compared (fewer than "
    accuracy += f"{policy.min_feedback} labelled predictions per variant)"
    if (
        champion.feedback_total >= policy.min_feedback
        and challenger.feedback_total >= policy.min_feedback
    ):
        champion_accuracy = champion.feedback_correct / champion.feedback_total
        challenger_accuracy = challenger.feedback_correct / challenger.feedback_total
        drop = champion_accuracy - challenger_accuracy
        accuracy = (
            f"accuracy {challenger_accuracy:.2%} ({challenger.feedback_correct} of "
            f"{challenger.feedback_total}) vs champion {champion_accuracy:.2%} "
            f"({champion.feedback_correct} of {champion.feedback_total})"
        )
        if drop > policy.max_accuracy_drop + 1e-12:
            return CanaryDecision(
                "rollback",
                f"challenger {accuracy}: {drop:.2%} lower, more than the allowed "
                f"{policy.max_accuracy_drop:.2%}",
                "accuracy",
            )
    return CanaryDecision(
        "promote",
        f"challenger passed after {challenger.requests} requests: error rate "
        f"{_rate(challenger)} vs champion {_rate(champion)}; {latency or 'no latency'}; "
        f"{accuracy}",
        "passed",
    )


# ----- the recorded decision --------------------------------------------------------------


def decision_key(model: str, version: int) -> str:
    """``canary/<model>/<version>/decision.json``: where the decision about a challenger lives."""
    return f"{DECISIONS_PREFIX}/{model}/{version}/{DECISION_FILE}"


@dataclass(frozen=True)
class CanaryRecord:
    """The decision about one challenger version, as recorded for every replica.

    Attributes:
        model: The model name.
        challenger_version: The version judged.
        champion_version: The champion it was judged against.
        action: ``promote`` or ``rollback``.
        rule: The rule that decided (see :class:`CanaryDecision`).
        reason: The numbers that decided it, in words.
        decided_by: The replica that recorded it (host name and pid: the pod name on
            Kubernetes).
        decided_at: When, ISO 8601 UTC.
    """

    model: str
    challenger_version: int
    champion_version: int
    action: FinalAction
    rule: str
    reason: str
    decided_by: str
    decided_at: str

    @classmethod
    def of(
        cls, model: str, challenger_version: int, champion_version: int, decision: CanaryDecision
    ) -> CanaryRecord:
        """The record of this replica's final ``decision`` (never ``wait``).

        Raises:
            ValueError: ``decision`` is ``wait``.
        """
        if decision.action not in ("promote", "rollback"):
            raise ValueError(f"only a promote or rollback is recorded, got {decision.action!r}")
        return cls(
            model=model,
            challenger_version=challenger_version,
            champion_version=champion_version,
            action=decision.action,
            rule=decision.rule,
            reason=decision.reason,
            decided_by=f"{socket.gethostname()} pid {os.getpid()}",
            decided_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        )

    def to_json(self) -> bytes:
        """The record as UTF-8 JSON."""
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, where: str) -> CanaryRecord:
        """Read a record back, checking every field.

        Args:
            data: The stored bytes.
            where: The object's URI, for error messages.

        Raises:
            ValueError: not JSON, or a field missing or of the wrong kind, naming ``where``,
                the field, what was expected and what was found.
        """
        try:
            body: Any = json.loads(data)
        except (ValueError, RecursionError) as error:
            raise ValueError(
                f"{where}: not a canary decision record: malformed JSON ({error})"
            ) from None
        if not isinstance(body, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(body).__name__}")
        expected: dict[str, type] = {
            "model": str,
            "challenger_version": int,
            "champion_version": int,
            "action": str,
            "rule": str,
            "reason": str,
            "decided_by": str,
            "decided_at": str,
        }
        problems = []
        for name, kind in expected.items():
            value = body.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                got = "nothing" if value is None else f"{type(value).__name__} {value!r}"
                problems.append(f"{name}: expected {kind.__name__}, got {got}")
        if not problems and body["action"] not in ("promote", "rollback"):
            problems.append(f"action: expected 'promote' or 'rollback', got {body['action']!r}")
        if problems:
            raise ValueError(f"{where}: invalid canary decision record: " + "; ".join(problems))
        return cls(**{name: body[name] for name in expected})


def record_decision(store: ObjectStore, record: CanaryRecord) -> tuple[CanaryRecord, bool]:
    """Record ``record`` unless a decision about that challenger exists; return the one that holds.

    Args:
        store: The object store every replica shares (``open_store(settings)``).
        record: This replica's decision.

    Returns:
        The recorded decision and True when it is ``record`` (this replica wrote it), or the
        decision another replica recorded first and False.

    Raises:
        kaizen.platform.storage.StorageError: the store cannot be reached or read.
        ValueError: the record found is not a valid decision record.
    """
    from kaizen.platform.storage import KeyExistsError

    key = decision_key(record.model, record.challenger_version)
    try:
        store.put_bytes(key, record.to_json())
    except KeyExistsError:
        return CanaryRecord.from_json(store.get_bytes(key), store.uri(key)), False
    return record, True


def recorded_decision(store: ObjectStore, model: str, version: int) -> CanaryRecord | None:
    """The decision recorded about challenger ``version`` of ``model``, or None.

    Raises:
        kaizen.platform.storage.StorageError: the store cannot be reached or read.
        ValueError: the record found is not a valid decision record.
    """
    from kaizen.platform.storage import KeyNotFoundError

    key = decision_key(model, version)
    try:
        data = store.get_bytes(key)
    except KeyNotFoundError:
        return None
    return CanaryRecord.from_json(data, store.uri(key))
