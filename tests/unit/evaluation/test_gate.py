"""The quality gate: policy validation, each check's reason, missing/NaN metrics, JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from kaizen.evaluation.gate import (
    Check,
    CheckResult,
    GateDecision,
    GatePolicy,
    ThresholdCheck,
    decide,
)
from kaizen.evaluation.metrics import evaluate_scores

GOOD = {"accuracy": 0.95, "roc_auc": 0.953, "recall": 0.6, "pr_auc": 0.7}
NOON = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_default_policy_matches_the_documented_minimums() -> None:
    policy = GatePolicy()

    assert policy.to_dict() == {
        "min_accuracy": 0.80,
        "min_roc_auc": 0.90,
        "min_recall": 0.50,
        "min_precision": None,
        "min_pr_auc": None,
    }


def test_good_metrics_pass_with_a_reason_for_every_check() -> None:
    decision = decide(GOOD, GatePolicy(), now=NOON)

    assert decision.passed
    assert decision.reasons == [
        "accuracy 0.950 >= 0.800: pass",
        "roc_auc 0.953 >= 0.900: pass",
        "recall 0.600 >= 0.500: pass",
    ]
    assert decision.failures == []
    assert decision.summary() == "gate passed (3/3 checks)"


@pytest.mark.parametrize(
    ("metric", "value", "reason"),
    [
        ("accuracy", 0.79, "accuracy 0.790 < 0.800: fail"),
        ("roc_auc", 0.85, "roc_auc 0.850 < 0.900: fail"),
        ("recall", 0.42, "recall 0.420 < 0.500: fail"),
    ],
)
def test_each_minimum_fails_the_gate_on_its_own(metric: str, value: float, reason: str) -> None:
    decision = decide({**GOOD, metric: value}, GatePolicy(), now=NOON)

    assert not decision.passed
    assert decision.failures == [reason]
    assert len(decision.reasons) == 3  # the passing checks are still explained
    failed = next(check for check in decision.checks if not check.passed)
    assert (failed.metric, failed.operator, failed.value) == (metric, ">=", value)
    assert decision.summary() == f"gate failed (2/3 checks): {reason}"


def test_value_equal_to_the_minimum_passes() -> None:
    decision = decide({**GOOD, "recall": 0.5}, GatePolicy(), now=NOON)

    assert decision.passed
    assert "recall 0.500 >= 0.500: pass" in decision.reasons


def test_near_miss_is_shown_with_enough_decimals_to_see_it_fail() -> None:
    decision = decide({**GOOD, "roc_auc": 0.8996}, GatePolicy(), now=NOON)

    assert decision.failures == ["roc_auc 0.8996 < 0.9000: fail"]


def test_missing_metric_fails_and_says_so() -> None:
    metrics = {key: value for key, value in GOOD.items() if key != "recall"}

    decision = decide(metrics, GatePolicy(), now=NOON)

    assert not decision.passed
    assert decision.failures == ["recall missing from metrics: fail (required >= 0.500)"]
    assert decision.checks[2].value is None


@pytest.mark.parametrize("nan", [float("nan"), np.float32("nan")])
def test_nan_metric_fails_and_says_so(nan: float) -> None:
    decision = decide({**GOOD, "roc_auc": nan}, GatePolicy(), now=NOON)

    assert not decision.passed
    assert decision.failures == ["roc_auc is NaN: fail (required >= 0.900)"]
    # NaN is not stored: the decision stays strict JSON.
    assert json.loads(decision.to_json())["checks"][1]["value"] is None


@pytest.mark.parametrize("value", ["0.95", True, None, float("inf")])
def test_non_numeric_metric_fails(value: object) -> None:
    decision = decide({**GOOD, "accuracy": value}, GatePolicy(), now=NOON)

    assert not decision.passed
    assert decision.failures == [
        f"accuracy is not a finite number ({value!r}): fail (required >= 0.800)"
    ]


def test_optional_pr_auc_minimum_adds_a_check() -> None:
    policy = GatePolicy(min_pr_auc=0.75)

    decision = decide(GOOD, policy, now=NOON)

    assert [check.name for check in decision.checks] == [
        "min_accuracy",
        "min_roc_auc",
        "min_recall",
        "min_pr_auc",
    ]
    assert decision.failures == ["pr_auc 0.700 < 0.750: fail"]


@pytest.mark.parametrize(
    "field", ["min_accuracy", "min_roc_auc", "min_recall", "min_precision", "min_pr_auc"]
)
@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan"), "0.8", True])
def test_policy_rejects_out_of_range_minimums_naming_the_field(field: str, bad: object) -> None:
    with pytest.raises(ValueError, match=rf"GatePolicy\.{field} must be a number in \[0, 1\]"):
        GatePolicy(**{field: bad})  # type: ignore[arg-type]


def test_policy_from_dict_rejects_unknown_keys() -> None:
    assert GatePolicy.from_dict({"min_recall": 0.6}) == GatePolicy(min_recall=0.6)
    with pytest.raises(ValueError, match=r"unknown GatePolicy field\(s\) \['min_recal'\]"):
        GatePolicy.from_dict({"min_recal": 0.6})


def test_decide_accepts_an_evaluation_result() -> None:
    labels = [0] * 8 + [1] * 2
    scores = [0.1, 0.2, 0.1, 0.3, 0.2, 0.1, 0.4, 0.6, 0.9, 0.7]
    result = evaluate_scores(labels, scores)

    decision = decide(result, GatePolicy(), now=NOON)

    values = {check.metric: check.value for check in decision.checks}
    assert values == {
        "accuracy": result.accuracy,
        "roc_auc": result.roc_auc,
        "recall": result.recall,
    }
    # 0.9 and 0.7 outrank every legit score; only the legit 0.6 is flagged.
    assert (result.accuracy, result.roc_auc, result.recall) == (0.9, 1.0, 1.0)
    assert decision.passed


def test_decision_time_is_utc_iso() -> None:
    assert decide(GOOD, now=NOON).decided_at == "2026-03-01T12:00:00+00:00"
    decided = datetime.fromisoformat(decide(GOOD).decided_at)
    assert decided.utcoffset() is not None and decided.utcoffset().total_seconds() == 0
    with pytest.raises(ValueError, match="must be timezone-aware"):
        decide(GOOD, now=datetime(2026, 3, 1, 12))


def test_json_round_trip_keeps_every_check() -> None:
    metrics = {"accuracy": 0.95, "roc_auc": float("nan"), "recall": 0.42}
    decision = decide(metrics, GatePolicy(min_pr_auc=0.5), now=NOON)

    text = decision.to_json()
    data = json.loads(text)

    assert GateDecision.from_json(text) == decision
    assert data["passed"] is False
    assert data["reasons"] == decision.reasons
    assert data["policy"]["min_pr_auc"] == 0.5
    assert data["checks"][2] == {
        "name": "min_recall",
        "metric": "recall",
        "operator": ">=",
        "threshold": 0.5,
        "value": 0.42,
        "passed": False,
        "reason": "recall 0.420 < 0.500: fail",
    }


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("checks"), "missing field 'checks'"),
        (lambda d: d.update(passed=True), "says passed=True but its checks say False"),
        (lambda d: d["checks"][0].pop("reason"), r"gate check is missing field\(s\) \['reason'\]"),
        (lambda d: d.update(checks=[]), "'checks' must be a non-empty list"),
        (lambda d: d["policy"].update(min_recall=2), r"GatePolicy\.min_recall"),
    ],
)
def test_from_json_rejects_a_tampered_decision(
    edit: Callable[[dict[str, Any]], object], message: str
) -> None:
    data = decide({**GOOD, "recall": 0.1}, now=NOON).to_dict()
    edit(data)

    with pytest.raises(ValueError, match=message):
        GateDecision.from_json(json.dumps(data))


def test_from_json_rejects_text_that_is_not_json() -> None:
    with pytest.raises(ValueError, match="gate decision is not valid JSON"):
        GateDecision.from_json("passed: yes")


def test_extra_checks_join_the_decision() -> None:
    f1_check = ThresholdCheck(metric="f1", threshold=0.9)
    loss_check = ThresholdCheck(metric="log_loss", threshold=0.3, operator="<=")

    decision = decide({**GOOD, "f1": 0.95, "log_loss": 0.35}, extra_checks=[f1_check, loss_check])

    assert [check.name for check in decision.checks][-2:] == ["min_f1", "max_log_loss"]
    assert decision.reasons[-2:] == ["f1 0.950 >= 0.900: pass", "log_loss 0.350 > 0.300: fail"]
    assert not decision.passed


def test_a_custom_check_plugs_into_decide_and_round_trips() -> None:
    @dataclass(frozen=True)
    class NoRegression:
        """The shape a champion-vs-challenger check will take."""

        metric: str
        champion: float
        tolerance: float

        def evaluate(self, metrics: Mapping[str, object]) -> CheckResult:
            floor = self.champion - self.tolerance
            value = float(metrics[self.metric])  # type: ignore[arg-type]
            passed = value >= floor
            return CheckResult(
                name=f"no_regression_{self.metric}",
                metric=self.metric,
                operator=">=",
                threshold=floor,
                value=value,
                passed=passed,
                reason=f"{self.metric} {value:.3f} vs champion {self.champion:.3f}: "
                + ("pass" if passed else "fail"),
            )

    check = NoRegression("roc_auc", champion=0.97, tolerance=0.01)
    assert isinstance(check, Check)

    decision = decide(GOOD, extra_checks=[check], now=NOON)

    assert not decision.passed
    assert decision.failures == ["roc_auc 0.953 vs champion 0.970: fail"]
    assert GateDecision.from_json(decision.to_json()) == decision


def test_threshold_check_rejects_unknown_operator() -> None:
    with pytest.raises(ValueError, match=r"operator must be one of \['<=', '>='\], got '>'"):
        ThresholdCheck(metric="recall", threshold=0.5, operator=">")  # type: ignore[arg-type]


def test_champion_comparison_passes_within_tolerance_and_fails_beyond() -> None:
    from kaizen.evaluation.gate import NoRegressionCheck

    metrics = {"accuracy": 0.95, "recall": 0.8}
    check = NoRegressionCheck(
        "roc_auc", champion_value=0.970, tolerance=0.010, champion="champion v3"
    )
    within = decide({**metrics, "roc_auc": 0.965}, GatePolicy(), extra_checks=[check])
    beyond = decide({**metrics, "roc_auc": 0.955}, GatePolicy(), extra_checks=[check])
    assert within.passed and not beyond.passed
    assert (
        within.reasons[-1] == "roc_auc 0.965 >= champion v3 0.970 - tolerance 0.010 = 0.960: pass"
    )
    assert beyond.reasons[-1] == "roc_auc 0.955 < champion v3 0.970 - tolerance 0.010 = 0.960: fail"
    # Absolute thresholds still apply on their own: both comparisons are in the decision.
    assert [c.name for c in beyond.checks][-2:] == ["min_recall", "no_regression_roc_auc"]
    assert GateDecision.from_json(beyond.to_json()).reasons == beyond.reasons


def test_champion_comparison_refuses_bad_inputs_and_fails_missing_metric() -> None:
    from kaizen.evaluation.gate import NoRegressionCheck

    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        NoRegressionCheck("roc_auc", 0.9, -0.1)
    with pytest.raises(ValueError, match="champion roc_auc must be a finite number"):
        NoRegressionCheck("roc_auc", float("nan"))
    result = NoRegressionCheck("roc_auc", 0.9, 0.01).evaluate({"accuracy": 0.9})
    assert not result.passed and "roc_auc missing" in result.reason
