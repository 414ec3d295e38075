"""The operating threshold: each policy on hand-made scores, ties, bad input, the JSON and tags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kaizen.evaluation.gate import GatePolicy, decide
from kaizen.evaluation.metrics import evaluate_scores
from kaizen.evaluation.threshold import (
    TAG_DECISION_THRESHOLD,
    TAG_THRESHOLD_POLICY,
    ThresholdChoice,
    ThresholdPolicy,
    choose_threshold,
    recorded_threshold,
    threshold_tags,
)
from kaizen.platform.settings import Settings

# Ten frauds and ten legit, scores hand-placed so each policy's answer can be worked out:
# frauds (label 1) at 0.95 0.9 0.85 0.8 0.7 0.6 0.5 0.4 0.3 0.1,
# legit  (label 0) at 0.75 0.65 0.55 0.45 0.35 0.25 0.2 0.15 0.05 0.02.
FRAUD = [0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.1]
LEGIT = [0.75, 0.65, 0.55, 0.45, 0.35, 0.25, 0.2, 0.15, 0.05, 0.02]
LABELS = [1] * 10 + [0] * 10
SCORES = FRAUD + LEGIT


def test_recall_policy_takes_the_highest_threshold_reaching_the_target() -> None:
    choice = choose_threshold(LABELS, SCORES, ThresholdPolicy("recall", target_recall=0.8))

    # Eight frauds are at or above 0.4; any higher threshold catches seven or fewer.
    assert choice.threshold == 0.4
    assert choice.validation_recall == pytest.approx(0.8)
    # Flagged at 0.4: 8 frauds, and legit 0.75 0.65 0.55 0.45.
    assert choice.validation_precision == pytest.approx(8 / 12)
    assert choice.validation_rows == 20


def test_recall_policy_always_reaches_a_target_of_one_at_the_lowest_fraud_score() -> None:
    choice = choose_threshold(LABELS, SCORES, ThresholdPolicy("recall", target_recall=1.0))

    assert choice.threshold == 0.1
    assert choice.validation_recall == 1.0


def test_tied_scores_are_flagged_together_and_counted_in_the_recall() -> None:
    # Three frauds share 0.6 with two legit: 0.6 flags all five, which is the only way to
    # reach recall 0.75 above 0.2; recall jumps from 0.25 to 1.0 there.
    labels = [1, 1, 1, 1, 0, 0, 0, 0]
    scores = [0.9, 0.6, 0.6, 0.6, 0.6, 0.6, 0.2, 0.1]

    choice = choose_threshold(labels, scores, ThresholdPolicy("recall", target_recall=0.75))

    assert choice.threshold == 0.6
    assert choice.validation_recall == 1.0
    assert choice.validation_precision == pytest.approx(4 / 6)
    flagged = evaluate_scores(labels, scores, threshold=choice.threshold)
    assert (flagged.tp, flagged.fp) == (4, 2)  # what the evaluation sees at that threshold


def test_cost_policy_takes_the_cheapest_threshold() -> None:
    # A missed fraud costs two false alarms. At 0.3: FN 1 (0.1), FP 5 -> 2 + 5 = 7; at 0.4
    # (FN 2, FP 4) 8, at 0.25 (FN 1, FP 6) 8, at 0.1 (FN 0, FP 8) 8: 0.3 is the cheapest.
    choice = choose_threshold(
        LABELS, SCORES, ThresholdPolicy("cost", cost_missed_fraud=2.0, cost_false_alarm=1.0)
    )

    assert choice.threshold == 0.3
    assert choice.validation_cost == 7.0
    assert choice.validation_recall == pytest.approx(0.9)


def test_cost_policy_flags_nothing_when_alarms_cost_more_than_any_fraud_saves() -> None:
    choice = choose_threshold(
        [1, 0, 0, 0], [0.6, 0.7, 0.8, 0.9], ThresholdPolicy("cost", cost_false_alarm=100.0)
    )

    assert choice.threshold == 1.0
    assert choice.validation_recall == 0.0
    assert choice.validation_precision == 0.0
    assert choice.validation_cost == 10.0  # the one missed fraud at the default cost 10


def test_cost_policy_breaks_ties_towards_fewer_alarms() -> None:
    # Flagging the 0.8 pair catches one fraud (saves 1) for one false alarm (costs 1): the
    # same cost either way, and the higher threshold (fewer alarms) wins.
    choice = choose_threshold(
        [1, 0, 1, 0],
        [0.8, 0.8, 0.95, 0.1],
        ThresholdPolicy("cost", cost_missed_fraud=1.0, cost_false_alarm=1.0),
    )

    assert choice.threshold == 0.95


def test_fixed_policy_keeps_its_threshold_and_reports_validation_figures() -> None:
    choice = choose_threshold(LABELS, SCORES, ThresholdPolicy("fixed", threshold=0.5))

    assert choice.threshold == 0.5
    assert choice.validation_recall == pytest.approx(0.7)
    assert choice.validation_precision == pytest.approx(7 / 10)  # legit 0.75 0.65 0.55


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"policy": "precision"}, r"threshold_policy must be one of \['recall', 'cost', 'fixed'\]"),
        ({"target_recall": 0.0}, r"target_recall must be a number in \(0, 1\], got 0"),
        ({"target_recall": 1.2}, r"target_recall must be a number in \(0, 1\], got 1.2"),
        ({"cost_missed_fraud": -1.0}, r"cost_missed_fraud must be a positive number"),
        ({"cost_false_alarm": float("inf")}, r"cost_false_alarm must be a positive number"),
        ({"threshold": 1.5}, r"threshold must be a number in \[0, 1\], got 1.5"),
        ({"threshold": True}, r"threshold must be a number in \[0, 1\], got True"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ThresholdPolicy(**kwargs)  # type: ignore[arg-type]


def test_validation_without_fraud_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match=r"y_true contains only class 0 \('legit'\)"):
        choose_threshold([0, 0, 0], [0.1, 0.5, 0.9], ThresholdPolicy())


def test_the_choice_round_trips_through_json_and_becomes_version_tags() -> None:
    choice = choose_threshold(LABELS, SCORES, ThresholdPolicy("recall", target_recall=0.8))

    assert ThresholdChoice.from_dict(choice.to_dict()) == choice
    tags = threshold_tags(choice.to_dict())
    assert tags == {
        TAG_DECISION_THRESHOLD: "0.4",
        TAG_THRESHOLD_POLICY: "highest threshold with validation recall >= 0.8",
    }
    assert recorded_threshold(tags) == 0.4
    assert threshold_tags(None) == {}
    with pytest.raises(ValueError, match="threshold choice is missing field 'policy'"):
        threshold_tags({"threshold": 0.4})


def test_a_version_without_a_recorded_threshold_has_none_and_a_bad_one_is_an_error() -> None:
    assert recorded_threshold({}) is None
    with pytest.raises(ValueError, match=r"kaizen.decision_threshold must be a number in \[0, 1\]"):
        recorded_threshold({TAG_DECISION_THRESHOLD: "high"})


def test_the_gate_judges_precision_and_recall_at_the_chosen_threshold() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([1] * 50 + [0] * 950)
    # Class-weighted scores: most legit above 0.5 too, frauds higher still.
    scores = np.where(labels == 1, rng.uniform(0.7, 1.0, 1000), rng.uniform(0.3, 0.8, 1000))
    policy = GatePolicy(min_accuracy=0.0, min_roc_auc=0.0, min_recall=0.8, min_precision=0.2)

    at_half = decide(evaluate_scores(labels, scores, threshold=0.5), policy)
    choice = choose_threshold(labels, scores, ThresholdPolicy("recall", target_recall=0.85))
    at_chosen = decide(evaluate_scores(labels, scores, threshold=choice.threshold), policy)

    assert not at_half.passed  # 0.5 flags most legit: precision far below 0.2
    assert any(f.startswith("precision 0.0") and "at threshold 0.5:" in f for f in at_half.failures)
    assert at_chosen.passed
    judged = [r for r in at_chosen.reasons if r.startswith(("precision", "recall"))]
    assert len(judged) == 2
    assert all(r.endswith(f"at threshold {choice.threshold:.4g}: pass") for r in judged)
    assert [c.name for c in at_chosen.checks] == [
        "min_accuracy",
        "min_roc_auc",
        "min_recall",
        "min_precision",
    ]


def test_the_evaluate_step_refuses_a_data_driven_policy_without_validation_rows(
    tmp_path: Path, settings: Settings
) -> None:
    from kaizen.steps.evaluate_model import evaluate_step
    from tests.support.serving import export_tiny_model, tiny_frame

    features = ["f0", "f1"]
    model = export_tiny_model(tmp_path / "model", features)
    tiny_frame(50, 3, features).to_parquet(tmp_path / "test.parquet")
    (tmp_path / "manifest.json").write_text("{}")

    with pytest.raises(ValueError, match="'cost' chooses the threshold on validation data"):
        evaluate_step(
            model,
            tmp_path / "test.parquet",
            tmp_path / "manifest.json",
            settings=settings,
            evaluation_path=tmp_path / "evaluation.json",
            report_path=tmp_path / "report.html",
            threshold_policy=ThresholdPolicy("cost"),
            compare_champion=False,
        )

    assert not (tmp_path / "evaluation.json").exists()
