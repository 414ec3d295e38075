"""The quality gate: decide from evaluation metrics whether a model may be registered.

A gate is a list of checks; each check reads the metrics and returns a ``CheckResult`` with a
human-readable reason, pass or fail. The decision passes only when every check passes, and
a metric that is missing, NaN or not a number fails its check, so nothing passes silently.

``GatePolicy`` turns the configured minimums into ``ThresholdCheck`` objects. Other kinds of
check (for example a champion-vs-challenger "no regression within a tolerance" check) only
need to implement the ``Check`` protocol and be passed to ``decide(..., extra_checks=...)``;
their results are recorded in the same shape (``name`` tells the kinds apart).
"""

from __future__ import annotations

import json
import math
import operator as op
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, SupportsFloat, runtime_checkable

import numpy as np

from kaizen.evaluation.metrics import EvaluationResult, known_fields_only

Operator = Literal[">=", "<="]

_COMPARE: dict[str, Callable[[float, float], bool]] = {">=": op.ge, "<=": op.le}
_NEGATED = {">=": "<", "<=": ">"}
# Metrics measured at the decision threshold: their reasons name it when the metrics carry it.
AT_THRESHOLD_METRICS = frozenset({"accuracy", "precision", "recall", "f1"})


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check, ready to show to a person and to serialise.

    Attributes:
        name: Identifies the check within a decision, e.g. ``"min_roc_auc"``.
        metric: The metric the check read.
        operator: ``">="`` or ``"<="``: the relation ``value`` must have to ``threshold``.
        threshold: The bound the metric was compared with.
        value: The metric's value, or ``None`` when it was missing, NaN or not a number.
        passed: Whether the check passed.
        reason: One line saying what was compared and the outcome, e.g.
            ``"roc_auc 0.953 >= 0.900: pass"``.
    """

    name: str
    metric: str
    operator: str
    threshold: float
    value: float | None
    passed: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckResult:
        """Rebuild a check result from ``to_dict()`` output.

        Raises:
            ValueError: A field is missing or has the wrong type.
        """
        missing = [f.name for f in fields(cls) if f.name not in data]
        if missing:
            raise ValueError(f"gate check is missing field(s) {missing}: {dict(data)!r}")
        value = data["value"]
        if not isinstance(data["passed"], bool):
            raise ValueError(f"gate check 'passed' must be true or false, got {data['passed']!r}")
        if value is not None and not _is_finite_number(value):
            raise ValueError(f"gate check 'value' must be a finite number or null, got {value!r}")
        return cls(
            name=str(data["name"]),
            metric=str(data["metric"]),
            operator=str(data["operator"]),
            threshold=float(data["threshold"]),
            value=None if value is None else float(value),
            passed=data["passed"],
            reason=str(data["reason"]),
        )


@runtime_checkable
class Check(Protocol):
    """Anything the gate can run: reads metrics by name, returns one ``CheckResult``."""

    def evaluate(self, metrics: Mapping[str, object]) -> CheckResult: ...


@dataclass(frozen=True)
class ThresholdCheck:
    """Compare one metric with a fixed bound: ``metrics[metric] <operator> threshold``.

    Attributes:
        metric: Name of the metric to read.
        threshold: The bound.
        operator: ``">="`` (a minimum, the default) or ``"<="`` (a maximum).
        name: Identifier in the decision; defaults to ``min_<metric>`` / ``max_<metric>``.
    """

    metric: str
    threshold: float
    operator: Operator = ">="
    name: str = ""

    def __post_init__(self) -> None:
        if self.operator not in _COMPARE:
            raise ValueError(
                f"check operator must be one of {sorted(_COMPARE)}, got {self.operator!r}"
            )
        if not _is_finite_number(self.threshold):
            raise ValueError(
                f"check threshold for {self.metric!r} must be a finite number, "
                f"got {self.threshold!r}"
            )
        if not self.name:
            prefix = "min" if self.operator == ">=" else "max"
            object.__setattr__(self, "name", f"{prefix}_{self.metric}")

    def evaluate(self, metrics: Mapping[str, object]) -> CheckResult:
        """Run the check on ``metrics``; a missing or non-finite value fails."""
        required = f"required {self.operator} {_fmt(self.threshold)}"
        if self.metric not in metrics:
            return self._result(
                None, False, f"{self.metric} missing from metrics: fail ({required})"
            )
        raw = metrics[self.metric]
        if not _is_finite_number(raw):
            shown = "NaN" if _is_nan(raw) else f"not a finite number ({raw!r})"
            return self._result(None, False, f"{self.metric} is {shown}: fail ({required})")
        value = float(raw)  # type: ignore[arg-type]  # _is_finite_number checked it
        passed = _COMPARE[self.operator](value, self.threshold)
        shown_value, shown_threshold = _fmt_pair(value, self.threshold)
        relation = self.operator if passed else _NEGATED[self.operator]
        outcome = "pass" if passed else "fail"
        at = _at_threshold(self.metric, metrics)
        reason = f"{self.metric} {shown_value} {relation} {shown_threshold}{at}: {outcome}"
        return self._result(value, passed, reason)

    def _result(self, value: float | None, passed: bool, reason: str) -> CheckResult:
        return CheckResult(
            name=self.name,
            metric=self.metric,
            operator=self.operator,
            threshold=float(self.threshold),
            value=value,
            passed=passed,
            reason=reason,
        )


@dataclass(frozen=True)
class NoRegressionCheck:
    """The candidate must not be worse than the champion by more than a tolerance.

    Both models are scored on the same fresh test window; the check reads the candidate's
    metric and compares it with ``champion_value - tolerance``.

    Attributes:
        metric: The objective metric compared (higher is better).
        champion_value: The champion's value of ``metric`` on the same window.
        tolerance: How much worse the candidate may be, >= 0.
        champion: How the champion is named in reasons, e.g. ``"champion v3"``.
    """

    metric: str
    champion_value: float
    tolerance: float = 0.0
    champion: str = "champion"

    def __post_init__(self) -> None:
        if not _is_finite_number(self.champion_value):
            raise ValueError(
                f"{self.champion} {self.metric} must be a finite number, "
                f"got {self.champion_value!r}"
            )
        if not _is_finite_number(self.tolerance) or self.tolerance < 0:
            raise ValueError(f"regression tolerance must be >= 0, got {self.tolerance!r}")

    def evaluate(self, metrics: Mapping[str, object]) -> CheckResult:
        floor = float(self.champion_value) - float(self.tolerance)
        base = ThresholdCheck(self.metric, floor, ">=", name=f"no_regression_{self.metric}")
        result = base.evaluate(metrics)
        against = f"{self.champion} {_fmt(self.champion_value)} - tolerance {_fmt(self.tolerance)}"
        if result.value is None:
            reason = result.reason.replace("(required", f"(against {against}; required")
        else:
            relation = ">=" if result.passed else "<"
            outcome = "pass" if result.passed else "fail"
            reason = (
                f"{self.metric} {_fmt(result.value)} {relation} {against} "
                f"= {_fmt(floor)}: {outcome}"
            )
        return CheckResult(
            name=result.name,
            metric=result.metric,
            operator=result.operator,
            threshold=result.threshold,
            value=result.value,
            passed=result.passed,
            reason=reason,
        )


_OPTIONAL_MINIMUMS = frozenset({"min_precision", "min_pr_auc"})


@dataclass(frozen=True)
class GatePolicy:
    """Minimum metric values a candidate model must reach.

    Accuracy alone says little on fraud data (flagging nothing is 98% accurate at a 2% fraud
    rate), which is why ROC AUC and recall are gated too.

    Attributes:
        min_accuracy: Minimum accuracy at the decision threshold (source requirement: 80%).
        min_roc_auc: Minimum area under the ROC curve.
        min_recall: Minimum share of fraud caught at the decision threshold.
        min_precision: Minimum share of flagged transactions that are fraud, at the decision
            threshold, or ``None`` to not gate on it.
        min_pr_auc: Minimum average precision, or ``None`` to not gate on it.

    Raises:
        ValueError: A minimum is not a number in ``[0, 1]``; the message names the field.
    """

    min_accuracy: float = 0.80
    min_roc_auc: float = 0.90
    min_recall: float = 0.50
    min_precision: float | None = None
    min_pr_auc: float | None = None

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None and item.name in _OPTIONAL_MINIMUMS:
                continue
            if not (_is_finite_number(value) and 0.0 <= float(value) <= 1.0):
                raise ValueError(
                    f"GatePolicy.{item.name} must be a number in [0, 1], got {value!r}"
                )
            # Store floats so a policy round-trips through JSON unchanged.
            object.__setattr__(self, item.name, float(value))

    def checks(self) -> list[Check]:
        """One ``ThresholdCheck`` per configured minimum (``min_<metric>`` gates ``<metric>``)."""
        result: list[Check] = []
        for item in fields(self):
            value = getattr(self, item.name)
            if value is not None:
                metric = item.name.removeprefix("min_")
                result.append(ThresholdCheck(metric=metric, threshold=value, name=item.name))
        return result

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GatePolicy:
        """Build a policy from a mapping; unknown keys are an error (a typo would be ignored).

        Raises:
            ValueError: An unknown key or an invalid value.
        """
        return cls(**known_fields_only(cls, data))


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict with every check's outcome.

    Attributes:
        passed: True only when every check passed.
        checks: The outcome of each check, in the order they ran.
        decided_at: When the decision was made, UTC, ISO 8601.
        policy: The policy the minimums came from.
    """

    passed: bool
    checks: tuple[CheckResult, ...]
    decided_at: str
    policy: GatePolicy

    @property
    def reasons(self) -> list[str]:
        """One line per check, passing and failing alike."""
        return [check.reason for check in self.checks]

    @property
    def failures(self) -> list[str]:
        """The reasons of the checks that failed."""
        return [check.reason for check in self.checks if not check.passed]

    def summary(self) -> str:
        """One line for logs and CLI output."""
        passed = sum(check.passed for check in self.checks)
        head = f"gate {'passed' if self.passed else 'failed'} ({passed}/{len(self.checks)} checks)"
        return head if self.passed else f"{head}: " + "; ".join(self.failures)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "checks": [check.to_dict() for check in self.checks],
            "reasons": self.reasons,
            "decided_at": self.decided_at,
            "policy": self.policy.to_dict(),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """Strict JSON (no NaN); ``GateDecision.from_json`` reads it back."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateDecision:
        """Rebuild a decision from ``to_dict()`` output.

        Raises:
            ValueError: A field is missing or malformed, or ``passed`` contradicts the checks.
        """
        for key in ("passed", "checks", "decided_at", "policy"):
            if key not in data:
                raise ValueError(f"gate decision is missing field {key!r}")
        if not isinstance(data["checks"], list) or not data["checks"]:
            raise ValueError(
                f"gate decision 'checks' must be a non-empty list, got {data['checks']!r}"
            )
        if not isinstance(data["policy"], Mapping):
            raise ValueError(f"gate decision 'policy' must be an object, got {data['policy']!r}")
        checks = tuple(CheckResult.from_dict(check) for check in data["checks"])
        passed = data["passed"]
        if not isinstance(passed, bool):
            raise ValueError(f"gate decision 'passed' must be true or false, got {passed!r}")
        if passed != all(check.passed for check in checks):
            raise ValueError(
                f"gate decision says passed={passed!r} but its checks say "
                f"{all(check.passed for check in checks)}"
            )
        return cls(
            passed=passed,
            checks=checks,
            decided_at=str(data["decided_at"]),
            policy=GatePolicy.from_dict(data["policy"]),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> GateDecision:
        """Read a decision written by ``to_json``.

        Raises:
            ValueError: The text is not JSON or not a gate decision.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"gate decision is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"gate decision must be a JSON object, got {type(data).__name__}")
        return cls.from_dict(data)


def decide(
    metrics: Mapping[str, object] | EvaluationResult,
    policy: GatePolicy | None = None,
    *,
    extra_checks: Sequence[Check] = (),
    now: datetime | None = None,
) -> GateDecision:
    """Run the policy's checks (then ``extra_checks``) on ``metrics`` and decide.

    Args:
        metrics: Metric values by name (e.g. ``EvaluationResult.to_dict()`` read from JSON),
            or an ``EvaluationResult``.
        policy: The minimums; ``GatePolicy()`` defaults when omitted.
        extra_checks: More checks to run after the policy's, e.g. a comparison with the
            current champion; their results join the same list.
        now: The decision time (UTC now when omitted); must be timezone-aware.

    Returns:
        The decision; ``passed`` is true only when every check passed.
    """
    policy = policy or GatePolicy()
    values: Mapping[str, object] = (
        metrics.scalar_metrics() if isinstance(metrics, EvaluationResult) else metrics
    )
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError(f"decision time must be timezone-aware, got naive {moment.isoformat()}")
    checks = [*policy.checks(), *extra_checks]
    if not checks:  # all([]) is True: a gate with nothing to check would pass anything
        raise ValueError("the gate has no checks to run")
    results = tuple(check.evaluate(values) for check in checks)
    return GateDecision(
        passed=all(result.passed for result in results),
        checks=results,
        decided_at=moment.astimezone(UTC).isoformat(timespec="seconds"),
        policy=policy,
    )


def _as_float(value: object) -> float | None:
    """``value`` as a float if it is a real number (not a bool, not a string), else ``None``."""
    # bool is an int subclass, but True as a metric or threshold is a bug, not 1.0.
    if isinstance(value, bool | np.bool_ | str | bytes) or not isinstance(value, SupportsFloat):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _is_nan(value: object) -> bool:
    number = _as_float(value)
    return number is not None and math.isnan(number)


def _is_finite_number(value: object) -> bool:
    number = _as_float(value)
    return number is not None and math.isfinite(number)


def _at_threshold(metric: str, metrics: Mapping[str, object]) -> str:
    """`` at threshold 0.734`` for a metric measured at the metrics' decision threshold."""
    threshold = metrics.get("threshold")
    if metric not in AT_THRESHOLD_METRICS or not _is_finite_number(threshold):
        return ""
    return f" at threshold {float(threshold):.4g}"  # type: ignore[arg-type]


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def _fmt_pair(value: float, threshold: float) -> tuple[str, str]:
    """Format both numbers with enough decimals that unequal numbers never look equal."""
    for decimals in range(3, 10):
        shown = f"{value:.{decimals}f}", f"{threshold:.{decimals}f}"
        if (shown[0] == shown[1]) == (value == threshold):
            return shown
    return repr(value), repr(threshold)
