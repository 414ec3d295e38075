"""The operating threshold: which fraud score flags a transaction, chosen by a declared policy.

Class weighting pushes the model's scores up, so 0.5 is rarely the operating point a fraud
team wants. The threshold is chosen on the **validation** window (never the test window it is
then reported on) by one of three policies:

* ``"recall"``: the highest threshold whose validation recall is at least ``target_recall``.
  The highest such threshold flags the fewest transactions, so it has the best precision
  among those reaching the target. Any target in ``(0, 1]`` is reachable: the lowest score
  of a fraud example catches every fraud (recall 1.0), so there is no fallback to document.
* ``"cost"``: the threshold with the lowest expected cost on validation,
  ``cost_missed_fraud * FN + cost_false_alarm * FP``. Candidates are the validation scores
  themselves plus ``1.0``; between equally cheap thresholds the highest wins (fewer alarms).
* ``"fixed"``: ``threshold`` as given (``0.5`` by default), whatever the data says.

Thresholds follow the evaluation's rule: a transaction is flagged when ``score >= threshold``.
Equal scores (ties) are flagged or not together, so a threshold is always one of the scores
(or ``1.0``) and recall is counted with every tie included.

The choice travels as a :class:`ThresholdChoice` (JSON via ``to_dict``): the evaluation
records it, the gate reads the test metrics computed at it, the registry tags the model
version with it (``TAG_DECISION_THRESHOLD``) and the server decides with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from kaizen.evaluation.metrics import known_fields_only, validate_inputs

POLICIES: tuple[str, ...] = ("recall", "cost", "fixed")
DEFAULT_THRESHOLD = 0.5
DEFAULT_TARGET_RECALL = 0.85
# The model version tags that record the choice (kaizen/registry tags every version with them).
TAG_DECISION_THRESHOLD = "kaizen.decision_threshold"
TAG_THRESHOLD_POLICY = "kaizen.threshold_policy"


@dataclass(frozen=True)
class ThresholdPolicy:
    """How the operating threshold is chosen.

    Attributes:
        policy: ``"recall"``, ``"cost"`` or ``"fixed"`` (see the module docstring).
        target_recall: ``"recall"``: the validation recall to reach, in ``(0, 1]``.
        cost_missed_fraud: ``"cost"``: the cost of one fraud let through, > 0.
        cost_false_alarm: ``"cost"``: the cost of one legit transaction flagged, > 0.
        threshold: ``"fixed"``: the threshold, in ``[0, 1]``.

    Raises:
        ValueError: An unknown policy or a value out of range; the message names the field.
    """

    policy: str = "recall"
    target_recall: float = DEFAULT_TARGET_RECALL
    cost_missed_fraud: float = 10.0
    cost_false_alarm: float = 1.0
    threshold: float = DEFAULT_THRESHOLD

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(
                f"threshold_policy must be one of {list(POLICIES)}, got {self.policy!r}"
            )
        ranges = {
            "target_recall": (lambda v: 0.0 < v <= 1.0, "a number in (0, 1]"),
            "cost_missed_fraud": (lambda v: 0.0 < v < math.inf, "a positive number"),
            "cost_false_alarm": (lambda v: 0.0 < v < math.inf, "a positive number"),
            "threshold": (lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]"),
        }
        for name, (valid, expected) in ranges.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not valid(value):
                raise ValueError(f"{name} must be {expected}, got {value!r}")
            object.__setattr__(self, name, float(value))

    def describe(self) -> str:
        """The policy in words, e.g. ``"highest threshold with validation recall >= 0.85"``."""
        if self.policy == "recall":
            return f"highest threshold with validation recall >= {self.target_recall:g}"
        if self.policy == "cost":
            return (
                f"lowest validation cost at {self.cost_missed_fraud:g} per missed fraud and "
                f"{self.cost_false_alarm:g} per false alarm"
            )
        return f"fixed threshold {self.threshold:g}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ThresholdPolicy:
        """Build a policy from ``to_dict()`` output; unknown keys are an error.

        Raises:
            ValueError: An unknown key or an invalid value.
        """
        return cls(**known_fields_only(cls, data))


@dataclass(frozen=True)
class ThresholdChoice:
    """The chosen threshold and what it achieved on the validation window.

    Attributes:
        threshold: Flag fraud when ``score >= threshold``.
        policy: The policy that chose it.
        validation_precision: Precision at ``threshold`` on validation (0.0 if nothing flagged).
        validation_recall: Recall at ``threshold`` on validation.
        validation_cost: ``cost_missed_fraud * FN + cost_false_alarm * FP`` on validation,
            with the policy's costs (reported for every policy, so choices compare).
        validation_rows: Number of validation examples the choice was made on.
    """

    threshold: float
    policy: ThresholdPolicy
    validation_precision: float
    validation_recall: float
    validation_cost: float
    validation_rows: int

    def summary(self) -> str:
        """One line, e.g. ``"threshold 0.734 (highest threshold with ...): validation ..."``."""
        return (
            f"threshold {self.threshold:.4g} ({self.policy.describe()}): validation precision "
            f"{self.validation_precision:.3f}, recall {self.validation_recall:.3f} on "
            f"{self.validation_rows} rows"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "policy": self.policy.to_dict(),
            "validation_precision": self.validation_precision,
            "validation_recall": self.validation_recall,
            "validation_cost": self.validation_cost,
            "validation_rows": self.validation_rows,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ThresholdChoice:
        """Rebuild a choice from ``to_dict()`` output.

        Raises:
            ValueError: A field is missing or malformed.
        """
        try:
            policy = data["policy"]
            if not isinstance(policy, Mapping):
                raise ValueError(f"threshold choice 'policy' must be an object, got {policy!r}")
            threshold = float(data["threshold"])
            if not 0.0 <= threshold <= 1.0:
                raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
            return cls(
                threshold=threshold,
                policy=ThresholdPolicy.from_dict(policy),
                validation_precision=float(data["validation_precision"]),
                validation_recall=float(data["validation_recall"]),
                validation_cost=float(data["validation_cost"]),
                validation_rows=int(data["validation_rows"]),
            )
        except KeyError as exc:
            raise ValueError(f"threshold choice is missing field {exc.args[0]!r}") from exc
        except TypeError as exc:
            raise ValueError(f"threshold choice has a malformed field: {exc}") from exc


def choose_threshold(y_true: Any, y_score: Any, policy: ThresholdPolicy) -> ThresholdChoice:
    """Choose the operating threshold on validation labels and scores.

    Args:
        y_true: Validation labels, 0 (legit) or 1 (fraud).
        y_score: Validation fraud probabilities in ``[0, 1]``.
        policy: How to choose.

    Returns:
        The threshold with its validation precision, recall and cost.

    Raises:
        ValueError: Bad inputs (see ``kaizen.evaluation.metrics.validate_inputs``; both classes
            must be present), named by field.
    """
    labels, scores = validate_inputs(y_true, y_score)
    # Every distinct score (descending) plus 1.0; at candidate t, flagged = scores >= t.
    candidates = np.unique(np.concatenate([scores, [1.0]]))[::-1]
    order = np.sort(scores)
    positives = np.sort(scores[labels == 1])
    n_pos = positives.size
    # Counts of examples with score >= t, ties included, for every candidate at once.
    flagged = order.size - np.searchsorted(order, candidates, side="left")
    tp = n_pos - np.searchsorted(positives, candidates, side="left")
    fp = flagged - tp
    recall = tp / n_pos
    cost = policy.cost_missed_fraud * (n_pos - tp) + policy.cost_false_alarm * fp
    if policy.policy == "fixed":
        index = -1
    elif policy.policy == "recall":
        # Candidates descend, recall ascends: the first that reaches the target is the highest.
        # The lowest fraud score is a candidate with recall 1.0, so one always does.
        index = int(np.flatnonzero(recall >= policy.target_recall - 1e-12)[0])
    else:
        # argmin returns the first minimum: the highest threshold among equally cheap ones.
        index = int(np.argmin(cost))
    if index < 0:
        threshold = policy.threshold
        tp_at = int(np.sum(positives >= threshold))
        fp_at = int(np.sum(scores >= threshold)) - tp_at
    else:
        threshold = float(candidates[index])
        tp_at, fp_at = int(tp[index]), int(fp[index])
    return ThresholdChoice(
        threshold=threshold,
        policy=policy,
        validation_precision=tp_at / (tp_at + fp_at) if tp_at + fp_at else 0.0,
        validation_recall=tp_at / n_pos,
        validation_cost=float(
            policy.cost_missed_fraud * (n_pos - tp_at) + policy.cost_false_alarm * fp_at
        ),
        validation_rows=int(labels.size),
    )


def recorded_threshold(tags: Mapping[str, str]) -> float | None:
    """The threshold a model version was registered with, or None for a version without one.

    Raises:
        ValueError: The tag is present but not a number in ``[0, 1]``.
    """
    raw = tags.get(TAG_DECISION_THRESHOLD)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise ValueError(
            f"model version tag {TAG_DECISION_THRESHOLD} must be a number in [0, 1], got {raw!r}"
        )
    return value


def threshold_tags(choice: Mapping[str, Any] | None) -> dict[str, str]:
    """The model version tags recording a threshold choice (``ThresholdChoice.to_dict()``).

    Args:
        choice: The choice as JSON, or None for a decision made without one.

    Returns:
        ``{TAG_DECISION_THRESHOLD: "0.734...", TAG_THRESHOLD_POLICY: "<policy in words>"}``, or
        an empty dict for None.

    Raises:
        ValueError: ``choice`` is malformed.
    """
    if choice is None:
        return {}
    parsed = ThresholdChoice.from_dict(choice)
    return {
        TAG_DECISION_THRESHOLD: repr(parsed.threshold),
        TAG_THRESHOLD_POLICY: parsed.policy.describe(),
    }
