"""The training reference, PSI and KS, and live metrics with their minimum counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kaizen.monitoring.drift import drift, psi
from kaizen.monitoring.live import live_metrics
from kaizen.monitoring.reference import (
    REFERENCE_TAG,
    Reference,
    ReferenceError,
    build_reference,
    distribution,
    load_reference,
    store_reference,
)
from kaizen.platform.storage import LocalObjectStore


def normal(mean: float, rows: int = 5000, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, 1.0, rows)


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift() -> None:
    reference = distribution(normal(0.0), name="amount")
    assert len(reference.counts) == 10 and sum(reference.counts) == 5000
    same = drift("amount", reference, normal(0.0, rows=800, seed=2))
    shifted = drift("amount", reference, normal(1.0, rows=800, seed=3))
    assert same.psi < 0.05 and shifted.psi > 0.5
    assert same.ks_pvalue is not None and shifted.ks_pvalue is not None
    assert same.ks_pvalue > 0.01 and shifted.ks_pvalue < 1e-6


def test_a_feature_with_few_values_gets_one_bin_per_value_and_a_shift_in_shares_counts() -> None:
    reference = distribution(np.array([0.0] * 900 + [1.0] * 100), name="is_night")
    assert reference.edges == (0.0,) and reference.counts == (900, 100)
    assert psi(reference, np.array([0.0] * 90 + [1.0] * 10)) == pytest.approx(0.0)
    assert psi(reference, np.array([0.0] * 50 + [1.0] * 50)) > 0.2


def test_bad_values_are_refused_by_name() -> None:
    with pytest.raises(ReferenceError, match=r"'amount'.*finite"):
        distribution(np.array([1.0, np.nan]), name="amount")
    with pytest.raises(ReferenceError, match=r"lacks the feature column\(s\) \['b'\]"):
        build_reference(pd.DataFrame({"a": [1.0]}), ["a", "b"], None)
    with pytest.raises(ValueError, match="no live values"):
        psi(distribution(normal(0.0), name="a"), np.array([]))


def test_a_reference_round_trips_through_the_store_and_a_version_without_one_has_none(
    tmp_path: object,
) -> None:
    store = LocalObjectStore(tmp_path)  # type: ignore[arg-type]
    frame = pd.DataFrame({"a": normal(0.0), "b": normal(5.0, seed=4)})
    reference = build_reference(frame, ["a", "b"], normal(0.3, seed=5).clip(0, 1))
    store_reference(store, "monitoring/references/m/run-round0.json", reference.to_json())
    store_reference(store, "monitoring/references/m/run-round0.json", "{}")  # retried: kept
    loaded = load_reference(store, {REFERENCE_TAG: "monitoring/references/m/run-round0.json"})
    assert loaded == reference and set(loaded.features) == {"a", "b"}
    assert load_reference(store, {}) is None
    with pytest.raises(ReferenceError, match="lacks"):
        load_reference(store, {REFERENCE_TAG: "monitoring/references/m/gone.json"})
    with pytest.raises(ReferenceError, match="format 1"):
        Reference.from_json('{"format": 9}', source="x.json")


def labelled(labels: list[int], decisions: list[bool], scores: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"label": labels, "decision": decisions, "score": scores})


def test_live_metrics_are_judged_only_on_enough_labels() -> None:
    # 20 frauds, half caught; 80 legit, 10 flagged.
    labels = [1] * 20 + [0] * 80
    decisions = [True] * 10 + [False] * 10 + [True] * 10 + [False] * 70
    scores = [0.9] * 10 + [0.3] * 10 + [0.8] * 10 + [0.1] * 70
    metrics = live_metrics(labelled(labels, decisions, scores), min_labelled=100, min_frauds=10)
    assert metrics.labelled == 100 and metrics.frauds == 20
    assert metrics.recall == pytest.approx(0.5) and metrics.precision == pytest.approx(0.5)
    assert metrics.roc_auc is not None and 0.5 < metrics.roc_auc < 1.0

    too_few = live_metrics(labelled(labels, decisions, scores), min_labelled=101, min_frauds=10)
    assert too_few.values() == {"precision": None, "recall": None, "roc_auc": None}
    few_frauds = live_metrics(labelled(labels, decisions, scores), min_labelled=10, min_frauds=21)
    assert few_frauds.recall is None and few_frauds.roc_auc is None
    assert few_frauds.precision == pytest.approx(0.5)
