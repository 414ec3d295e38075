"""evaluate_scores: hand-computed values, agreement with scikit-learn, curves, input errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from kaizen.evaluation.metrics import (
    MAX_CURVE_POINTS,
    EvaluationResult,
    downsample_curve,
    evaluate_scores,
)

# The scikit-learn documentation's example: worked out by hand below.
TINY_LABELS = [0, 0, 1, 1]
TINY_SCORES = [0.1, 0.4, 0.35, 0.8]


def imbalanced_set(n: int, seed: int, fraud_rate: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    """Fraud-like data: few positives whose scores overlap the negatives'."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < fraud_rate).astype(int)
    scores = np.clip(rng.normal(0.25 + 0.4 * labels, 0.15), 0.0, 1.0)
    return labels, scores


def test_tiny_case_matches_hand_computed_values() -> None:
    result = evaluate_scores(TINY_LABELS, TINY_SCORES, threshold=0.5)

    # Only 0.8 is flagged: tp=1 (0.8), fn=1 (0.35), tn=2 (0.1, 0.4), fp=0.
    assert result.confusion_matrix == ((2, 0), (1, 1))
    assert (result.tn, result.fp, result.fn, result.tp) == (2, 0, 1, 1)
    assert result.class_labels == ("legit", "fraud")
    assert result.accuracy == pytest.approx(0.75)
    assert result.precision == pytest.approx(1.0)
    assert result.recall == pytest.approx(0.5)
    assert result.f1 == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    # 3 of the 4 (fraud, legit) pairs are ranked correctly; only (0.35, 0.4) is not.
    assert result.roc_auc == pytest.approx(0.75)
    # Ranked: 0.8 (fraud, P=1, R=.5), 0.4 (legit), 0.35 (fraud, P=2/3, R=1): .5*1 + .5*2/3.
    assert result.pr_auc == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert (result.n, result.positives, result.negatives) == (4, 2, 2)
    assert result.base_rate == pytest.approx(0.5)
    assert result.threshold == 0.5


def test_tiny_case_curves_start_at_finite_flag_nothing_threshold() -> None:
    result = evaluate_scores(TINY_LABELS, TINY_SCORES)

    assert result.roc_curve.fpr == pytest.approx((0.0, 0.0, 0.5, 0.5, 1.0))
    assert result.roc_curve.tpr == pytest.approx((0.0, 0.5, 0.5, 1.0, 1.0))
    # scikit-learn's first threshold is +inf; it is stored as 1.0.
    assert result.roc_curve.thresholds == pytest.approx((1.0, 0.8, 0.4, 0.35, 0.1))

    assert result.pr_curve.recall == pytest.approx((0.0, 0.5, 0.5, 1.0, 1.0))
    assert result.pr_curve.precision == pytest.approx((1.0, 1.0, 0.5, 2 / 3, 0.5))
    assert result.pr_curve.thresholds == pytest.approx((1.0, 0.8, 0.4, 0.35, 0.1))


def test_score_equal_to_threshold_is_flagged_as_fraud() -> None:
    result = evaluate_scores([0, 1, 0], [0.2, 0.5, 0.5], threshold=0.5)

    assert result.confusion_matrix == ((1, 1), (0, 1))
    assert result.precision == pytest.approx(0.5)


def test_threshold_that_flags_nothing_gives_zero_precision_not_nan() -> None:
    result = evaluate_scores([0, 1, 1], [0.1, 0.6, 0.9], threshold=1.0)

    assert result.confusion_matrix == ((1, 0), (2, 0))
    assert result.precision == 0.0
    assert result.recall == 0.0
    assert result.f1 == 0.0
    assert result.roc_auc == pytest.approx(1.0)


def test_agrees_with_scikit_learn_on_a_larger_random_set() -> None:
    labels, scores = imbalanced_set(3000, seed=7)
    threshold = 0.45
    predicted = (scores >= threshold).astype(int)

    result = evaluate_scores(labels, scores, threshold=threshold)

    assert result.accuracy == pytest.approx(skm.accuracy_score(labels, predicted))
    assert result.precision == pytest.approx(skm.precision_score(labels, predicted))
    assert result.recall == pytest.approx(skm.recall_score(labels, predicted))
    assert result.f1 == pytest.approx(skm.f1_score(labels, predicted))
    assert result.roc_auc == pytest.approx(skm.roc_auc_score(labels, scores))
    assert result.pr_auc == pytest.approx(skm.average_precision_score(labels, scores))
    expected_matrix = skm.confusion_matrix(labels, predicted, labels=[0, 1]).tolist()
    assert [list(row) for row in result.confusion_matrix] == expected_matrix
    assert result.positives == int(labels.sum())


def test_long_curves_are_downsampled_keeping_endpoints_and_order() -> None:
    labels, scores = imbalanced_set(20_000, seed=3, fraud_rate=0.2)
    full_fpr, full_tpr, _ = skm.roc_curve(labels, scores)
    full_precision, _, _ = skm.precision_recall_curve(labels, scores)
    assert full_fpr.size > MAX_CURVE_POINTS and full_precision.size > MAX_CURVE_POINTS

    result = evaluate_scores(labels, scores)
    roc, pr = result.roc_curve, result.pr_curve

    assert 2 < len(roc.fpr) <= MAX_CURVE_POINTS
    assert len(roc.fpr) == len(roc.tpr) == len(roc.thresholds)
    assert (roc.fpr[0], roc.tpr[0], roc.thresholds[0]) == (0.0, 0.0, 1.0)
    assert (roc.fpr[-1], roc.tpr[-1]) == (1.0, 1.0)
    assert np.all(np.diff(roc.fpr) >= 0) and np.all(np.diff(roc.tpr) >= 0)
    assert np.all(np.diff(roc.thresholds) <= 0)
    assert all(math.isfinite(t) and 0.0 <= t <= 1.0 for t in roc.thresholds)
    assert set(zip(roc.fpr, roc.tpr, strict=True)) <= set(zip(full_fpr, full_tpr, strict=True))
    # The kept points still describe the same curve: its area is close to the exact AUC.
    assert np.trapezoid(roc.tpr, roc.fpr) == pytest.approx(result.roc_auc, abs=0.005)

    assert 2 < len(pr.recall) <= MAX_CURVE_POINTS
    assert len(pr.recall) == len(pr.precision) == len(pr.thresholds)
    assert (pr.recall[0], pr.precision[0], pr.thresholds[0]) == (0.0, 1.0, 1.0)
    assert pr.recall[-1] == 1.0
    assert pr.precision[-1] == pytest.approx(result.base_rate)  # the lowest threshold flags all
    assert np.all(np.diff(pr.recall) >= 0) and np.all(np.diff(pr.thresholds) <= 0)
    assert all(math.isfinite(t) and 0.0 <= t <= 1.0 for t in pr.thresholds)


def test_downsample_curve_respects_bound_and_endpoints() -> None:
    x = np.linspace(0.0, 1.0, 1000) ** 3
    y = np.sqrt(np.linspace(0.0, 1.0, 1000))

    indices = downsample_curve(x, y, max_points=50)

    assert len(indices) <= 50
    assert indices[0] == 0 and indices[-1] == 999
    assert np.all(np.diff(indices) > 0)
    assert list(downsample_curve(x[:10], y[:10], max_points=50)) == list(range(10))
    with pytest.raises(ValueError, match="max_points must be at least 2"):
        downsample_curve(x, y, max_points=1)


def test_to_dict_is_strict_json_and_round_trips() -> None:
    labels, scores = imbalanced_set(500, seed=11)
    result = evaluate_scores(labels, scores)

    text = json.dumps(result.to_dict(), allow_nan=False)
    data = json.loads(text)

    assert data["confusion_matrix"] == [[result.tn, result.fp], [result.fn, result.tp]]
    assert data["class_labels"] == ["legit", "fraud"]
    assert data["roc_auc"] == result.roc_auc
    assert EvaluationResult.from_dict(data) == result


def test_from_dict_names_a_missing_field() -> None:
    data = evaluate_scores(TINY_LABELS, TINY_SCORES).to_dict()
    del data["roc_curve"]

    with pytest.raises(ValueError, match="missing field 'roc_curve'"):
        EvaluationResult.from_dict(data)


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        ([0, 1, 1], [0.1, 0.9], "y_true has 3 values, y_score has 2"),
        ([], [], "cannot evaluate an empty set"),
        (
            [0, 1, 2, 1, 3],
            [0.1, 0.2, 0.3, 0.4, 0.5],
            r"only 0 \(legit\) and 1 \(fraud\); invalid labels: 2 of 5, first at index 2 "
            r"\(value 2.0\)",
        ),
        ([0, 1, float("nan")], [0.1, 0.2, 0.3], r"invalid labels: 1 of 3, first at index 2"),
        (
            [0, 1, 0, 1],
            [0.1, 1.5, 0.2, -0.1],
            r"probabilities in \[0, 1\] with no NaN; invalid scores: 2 of 4, first at index 1 "
            r"\(value 1.5\)",
        ),
        (
            [0, 1, 0],
            [0.1, float("nan"), 0.2],
            r"invalid scores: 1 of 3, first at index 1 \(value nan\)",
        ),
        (
            [0, 0, 0],
            [0.1, 0.2, 0.3],
            r"only class 0 \('legit'\) in 3 examples: roc_auc and pr_auc are undefined",
        ),
        ([1, 1], [0.1, 0.2], r"only class 1 \('fraud'\) in 2 examples"),
        ([[0, 1], [1, 0]], [[0.1, 0.9], [0.8, 0.2]], r"y_true must be one-dimensional"),
        ([0, 1], ["low", "high"], "y_score must be numeric"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(
    labels: list[object], scores: list[object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_scores(labels, scores)


def test_column_vector_scores_get_a_hint_to_flatten() -> None:
    with pytest.raises(ValueError, match=r"shape \(2, 1\) \(flatten it"):
        evaluate_scores([0, 1], np.array([[0.2], [0.7]]))


@pytest.mark.parametrize("threshold", [-0.1, 1.5, float("nan"), True])
def test_threshold_outside_unit_interval_is_rejected(threshold: float) -> None:
    with pytest.raises(ValueError, match=r"threshold must be a number in \[0, 1\]"):
        evaluate_scores(TINY_LABELS, TINY_SCORES, threshold=threshold)


def test_curves_and_matrix_load_into_kfp_classification_metrics() -> None:
    from kfp.dsl import ClassificationMetrics

    labels, scores = imbalanced_set(5000, seed=5, fraud_rate=0.1)
    result = evaluate_scores(labels, scores)
    kfp_metrics = ClassificationMetrics(name="metrics")

    kfp_metrics.log_roc_curve(
        list(result.roc_curve.fpr), list(result.roc_curve.tpr), list(result.roc_curve.thresholds)
    )
    kfp_metrics.log_confusion_matrix(
        list(result.class_labels), [list(row) for row in result.confusion_matrix]
    )

    # The KFP UI reads this metadata as JSON: an infinite threshold would break it.
    metadata = json.loads(json.dumps(kfp_metrics.metadata, allow_nan=False))
    points = metadata["confidenceMetrics"]
    assert len(points) == len(result.roc_curve.fpr) <= MAX_CURVE_POINTS
    assert points[0]["confidenceThreshold"] == 1.0
    assert metadata["confusionMatrix"]["rows"][1]["row"] == [result.fn, result.tp]
