"""Binary classification metrics for the fraud model, computed from labels and scores.

Conventions used everywhere in Kaizen's evaluation:

* Labels are ``0`` (``"legit"``) and ``1`` (``"fraud"``); ``fraud`` is the positive class.
* Scores are fraud probabilities in ``[0, 1]``. A transaction is flagged as fraud when
  ``score >= threshold`` (the same rule scikit-learn's curves use).
* The confusion matrix is ``[[tn, fp], [fn, tp]]``: rows are the true class and columns the
  predicted class, both in the order of ``CLASS_LABELS`` (``["legit", "fraud"]``). This is
  the ``(categories, matrix)`` pair KFP's ``ClassificationMetrics.log_confusion_matrix`` takes.
* ``pr_auc`` is the average precision (step-wise area, ``sklearn.metrics.average_precision_score``),
  not a trapezoidal area, which over-estimates on imbalanced data.
* Precision at a threshold that flags nothing is reported as ``0.0`` (not NaN), so it can be
  logged and gated; the gate then fails it like any other low value.
* Curves are stored at most ``MAX_CURVE_POINTS`` points long, always keeping both endpoints,
  so they fit in KFP metadata and JSON. Curve thresholds are finite: scikit-learn starts the
  ROC curve at threshold ``+inf`` ("flag nothing"); we store that point's threshold as ``1.0``
  because KFP's ``log_roc_curve`` and JSON need finite numbers. The precision-recall curve
  likewise starts at the conventional point ``(recall 0, precision 1)`` with threshold ``1.0``.
  Both curves are ordered by decreasing threshold (recall / true-positive rate increasing).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

CLASS_LABELS: tuple[str, str] = ("legit", "fraud")
MAX_CURVE_POINTS = 200

# Threshold stored for the curve point that flags nothing (scikit-learn says +inf).
FLAG_NOTHING_THRESHOLD = 1.0


@dataclass(frozen=True)
class RocCurve:
    """Receiver operating characteristic: one point per kept threshold, thresholds decreasing."""

    fpr: tuple[float, ...]
    tpr: tuple[float, ...]
    thresholds: tuple[float, ...]

    def to_dict(self) -> dict[str, list[float]]:
        return {"fpr": list(self.fpr), "tpr": list(self.tpr), "thresholds": list(self.thresholds)}


@dataclass(frozen=True)
class PrecisionRecallCurve:
    """Precision against recall: one point per kept threshold, thresholds decreasing."""

    precision: tuple[float, ...]
    recall: tuple[float, ...]
    thresholds: tuple[float, ...]

    def to_dict(self) -> dict[str, list[float]]:
        return {
            "precision": list(self.precision),
            "recall": list(self.recall),
            "thresholds": list(self.thresholds),
        }


# Scalar metrics a gate or a tracker can read; all are floats in [0, 1] except the counts.
SCALAR_METRICS: tuple[str, ...] = (
    "accuracy",
    "roc_auc",
    "pr_auc",
    "precision",
    "recall",
    "f1",
    "threshold",
    "base_rate",
)
# The quality metrics people read (run summary, gate records, notifications), in that order.
HEADLINE_METRICS: tuple[str, ...] = SCALAR_METRICS[:6]


@dataclass(frozen=True)
class EvaluationResult:
    """Everything measured on one labelled set of scores.

    Attributes:
        accuracy: Share of examples classified correctly at ``threshold``.
        roc_auc: Area under the ROC curve (threshold-free).
        pr_auc: Average precision (threshold-free).
        precision: ``tp / (tp + fp)`` at ``threshold``; ``0.0`` when nothing is flagged.
        recall: ``tp / (tp + fn)`` at ``threshold``.
        f1: Harmonic mean of precision and recall at ``threshold``; ``0.0`` when both are 0.
        threshold: The decision threshold (flag fraud when ``score >= threshold``).
        confusion_matrix: ``((tn, fp), (fn, tp))``, rows true class, columns predicted class.
        n: Number of examples.
        positives: Number of fraud examples.
        base_rate: ``positives / n``; the precision of flagging everything.
        roc_curve: Downsampled ROC curve with finite thresholds.
        pr_curve: Downsampled precision-recall curve with finite thresholds.
        class_labels: Names of class 0 and class 1, the confusion matrix's order.
    """

    accuracy: float
    roc_auc: float
    pr_auc: float
    precision: float
    recall: float
    f1: float
    threshold: float
    confusion_matrix: tuple[tuple[int, int], tuple[int, int]]
    n: int
    positives: int
    base_rate: float
    roc_curve: RocCurve
    pr_curve: PrecisionRecallCurve
    class_labels: tuple[str, str] = field(default=CLASS_LABELS)

    @property
    def negatives(self) -> int:
        return self.n - self.positives

    @property
    def tn(self) -> int:
        return self.confusion_matrix[0][0]

    @property
    def fp(self) -> int:
        return self.confusion_matrix[0][1]

    @property
    def fn(self) -> int:
        return self.confusion_matrix[1][0]

    @property
    def tp(self) -> int:
        return self.confusion_matrix[1][1]

    def scalar_metrics(self) -> dict[str, float]:
        """The scalar metrics by name (``SCALAR_METRICS``), e.g. for a gate or MLflow."""
        return {name: float(getattr(self, name)) for name in SCALAR_METRICS}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: scalar metrics at the top level, then counts, matrix and curves."""
        return {
            **self.scalar_metrics(),
            "n": self.n,
            "positives": self.positives,
            "negatives": self.negatives,
            "class_labels": list(self.class_labels),
            "confusion_matrix": [list(row) for row in self.confusion_matrix],
            "roc_curve": self.roc_curve.to_dict(),
            "pr_curve": self.pr_curve.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationResult:
        """Rebuild a result from ``to_dict()`` output (e.g. a metrics JSON between steps).

        Raises:
            ValueError: A field is missing or has the wrong shape.
        """
        try:
            matrix = data["confusion_matrix"]
            tn, fp = (int(v) for v in matrix[0])
            fn, tp = (int(v) for v in matrix[1])
            roc = data["roc_curve"]
            pr = data["pr_curve"]
            labels = data.get("class_labels", CLASS_LABELS)
            return cls(
                **{name: float(data[name]) for name in SCALAR_METRICS},
                confusion_matrix=((tn, fp), (fn, tp)),
                n=int(data["n"]),
                positives=int(data["positives"]),
                roc_curve=RocCurve(
                    fpr=_floats(roc["fpr"]),
                    tpr=_floats(roc["tpr"]),
                    thresholds=_floats(roc["thresholds"]),
                ),
                pr_curve=PrecisionRecallCurve(
                    precision=_floats(pr["precision"]),
                    recall=_floats(pr["recall"]),
                    thresholds=_floats(pr["thresholds"]),
                ),
                class_labels=(str(labels[0]), str(labels[1])),
            )
        except KeyError as exc:
            raise ValueError(f"evaluation result is missing field {exc.args[0]!r}") from exc
        except (TypeError, IndexError) as exc:
            raise ValueError(f"evaluation result has a malformed field: {exc}") from exc


def _floats(values: Iterable[Any]) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def _as_1d(values: Any, name: str) -> npt.NDArray[np.float64]:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric, got values numpy cannot convert: {exc}") from exc
    if array.ndim != 1:
        # A (n, 1) model output is the common case; say how to fix it rather than guess.
        raise ValueError(
            f"{name} must be one-dimensional, got shape {array.shape}"
            + (" (flatten it, e.g. .ravel())" if array.ndim == 2 and 1 in array.shape else "")
        )
    return array


def _describe_bad(array: npt.NDArray[np.float64], bad: npt.NDArray[np.bool_]) -> str:
    index = int(np.flatnonzero(bad)[0])
    return (
        f"{int(bad.sum())} of {array.size}, first at index {index} (value {float(array[index])!r})"
    )


def validate_inputs(
    y_true: Any, y_score: Any
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Check labels and scores and return them as 1-D arrays (int labels, float scores).

    Args:
        y_true: True labels, 0 (legit) or 1 (fraud).
        y_score: Fraud probabilities in ``[0, 1]``.

    Returns:
        ``(labels, scores)`` as numpy arrays.

    Raises:
        ValueError: Lengths differ, input is empty, a label is not 0/1, a score is NaN or
            outside ``[0, 1]``, or only one class is present.
    """
    labels = _as_1d(y_true, "y_true")
    scores = _as_1d(y_score, "y_score")
    if labels.size != scores.size:
        raise ValueError(
            f"y_true and y_score must have the same length: y_true has {labels.size} values, "
            f"y_score has {scores.size}"
        )
    if labels.size == 0:
        raise ValueError("cannot evaluate an empty set: y_true and y_score have no values")
    bad_labels = ~np.isin(labels, (0.0, 1.0))  # NaN is not in the set, so it is caught too
    if bad_labels.any():
        raise ValueError(
            "y_true must contain only 0 (legit) and 1 (fraud); invalid labels: "
            + _describe_bad(labels, bad_labels)
        )
    bad_scores = ~((scores >= 0.0) & (scores <= 1.0))  # NaN compares false, so it is caught
    if bad_scores.any():
        raise ValueError(
            "y_score must be probabilities in [0, 1] with no NaN; invalid scores: "
            + _describe_bad(scores, bad_scores)
        )
    int_labels = labels.astype(np.int64)
    positives = int(int_labels.sum())
    if positives in (0, labels.size):
        present = CLASS_LABELS[int_labels[0]]
        raise ValueError(
            f"y_true contains only class {int_labels[0]} ({present!r}) in {labels.size} examples: "
            "roc_auc and pr_auc are undefined with a single class; evaluate on a set with both "
            "legit and fraud examples"
        )
    return int_labels, scores


def downsample_curve(
    x: npt.ArrayLike, y: npt.ArrayLike, max_points: int = MAX_CURVE_POINTS
) -> npt.NDArray[np.intp]:
    """Indices of at most ``max_points`` curve points, spread evenly along the curve's length.

    Spacing by arc length (rather than by index) keeps the visible shape where the curve
    bends, instead of spending points on long runs of near-identical ones. The first and last
    points are always kept and the indices are increasing, so a monotone curve stays monotone.

    Args:
        x: Curve x coordinates, in curve order.
        y: Curve y coordinates, same length as ``x``.
        max_points: Upper bound on the number of indices returned (at least 2).

    Returns:
        Sorted unique indices into the curve.
    """
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2 to keep both endpoints, got {max_points}")
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    size = xs.size
    if size <= max_points:
        return np.arange(size)
    length = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(xs), np.diff(ys)))])
    if length[-1] == 0.0:
        targets = np.linspace(0, size - 1, max_points).round().astype(np.intp)
        return np.unique(targets)
    positions = np.linspace(0.0, length[-1], max_points)
    indices = np.searchsorted(length, positions, side="left").clip(0, size - 1)
    indices[0], indices[-1] = 0, size - 1
    return np.unique(indices)


def evaluate_scores(
    y_true: Any,
    y_score: Any,
    threshold: float = 0.5,
    *,
    max_curve_points: int = MAX_CURVE_POINTS,
) -> EvaluationResult:
    """Compute accuracy, ROC/PR AUC, threshold metrics, confusion matrix and curves.

    Args:
        y_true: True labels, 0 (legit) or 1 (fraud); any 1-D array-like.
        y_score: Fraud probabilities in ``[0, 1]``, same length as ``y_true``.
        threshold: Flag fraud when ``score >= threshold``; must be in ``[0, 1]``.
        max_curve_points: Upper bound on stored ROC and PR curve points.

    Returns:
        The frozen ``EvaluationResult``.

    Raises:
        ValueError: Bad inputs (see ``validate_inputs``) or a threshold outside ``[0, 1]``.
    """
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )

    if isinstance(threshold, bool) or not (
        isinstance(threshold, int | float) and 0.0 <= threshold <= 1.0
    ):
        raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
    labels, scores = validate_inputs(y_true, y_score)

    predicted = (scores >= threshold).astype(np.int64)
    tp = int(np.sum((predicted == 1) & (labels == 1)))
    fp = int(np.sum((predicted == 1) & (labels == 0)))
    fn = int(np.sum((predicted == 0) & (labels == 1)))
    tn = int(np.sum((predicted == 0) & (labels == 0)))
    n = labels.size
    positives = tp + fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / positives
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0

    fpr, tpr, roc_thresholds = roc_curve(labels, scores)
    roc_thresholds = np.minimum(roc_thresholds, FLAG_NOTHING_THRESHOLD)  # +inf -> 1.0
    keep = downsample_curve(fpr, tpr, max_curve_points)

    # sklearn orders the PR curve by increasing threshold and appends (recall 0, precision 1)
    # without a threshold; reverse it to match the ROC order and give that point 1.0.
    pr_precision, pr_recall, pr_thresholds = precision_recall_curve(labels, scores)
    pr_precision, pr_recall = pr_precision[::-1], pr_recall[::-1]
    pr_thresholds = np.concatenate([[FLAG_NOTHING_THRESHOLD], pr_thresholds[::-1]])
    keep_pr = downsample_curve(pr_recall, pr_precision, max_curve_points)

    return EvaluationResult(
        accuracy=(tp + tn) / n,
        roc_auc=float(roc_auc_score(labels, scores)),
        pr_auc=float(average_precision_score(labels, scores)),
        precision=precision,
        recall=recall,
        f1=f1,
        threshold=float(threshold),
        confusion_matrix=((tn, fp), (fn, tp)),
        n=n,
        positives=positives,
        base_rate=positives / n,
        roc_curve=RocCurve(
            fpr=_floats(fpr[keep]), tpr=_floats(tpr[keep]), thresholds=_floats(roc_thresholds[keep])
        ),
        pr_curve=PrecisionRecallCurve(
            precision=_floats(pr_precision[keep_pr]),
            recall=_floats(pr_recall[keep_pr]),
            thresholds=_floats(pr_thresholds[keep_pr]),
        ),
    )


def known_fields_only(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` as keyword arguments of dataclass ``cls``, refusing keys it does not have (a
    typo would otherwise be ignored).

    Raises:
        ValueError: naming the unknown keys and the known ones.
    """
    known = {item.name for item in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(
            f"unknown {cls.__name__} field(s) {unknown}; expected some of {sorted(known)}"
        )
    return dict(data)
