"""The synthetic generator: contract, determinism, learnable signal and drift."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from kaizen.data.columns import (
    AMOUNT,
    CUSTOMER_ID,
    EVENT_TIMESTAMP,
    LABEL,
    LABEL_TIMESTAMP,
    MERCHANT_ID,
    RAW_COLUMNS,
    TRANSACTION_ID,
)
from kaizen.data.generator import GeneratorConfig, generate_transactions
from kaizen.data.schema import validate_transactions

TEST_DAYS = 10  # the temporal split: train on the earlier days, test on the last ones


@pytest.fixture(autouse=True)
def single_thread_models() -> Iterator[None]:
    # OpenMP threads spin and stall when the cores are shared with other work; these
    # models are small enough that one thread is faster and steadier.
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def default_frame() -> pd.DataFrame:
    return generate_transactions(GeneratorConfig())


def point_in_time_features(df: pd.DataFrame) -> pd.DataFrame:
    """The feature layer's features, each computed from strictly earlier data only."""
    features = pd.DataFrame(index=df.index)
    by_customer = df.sort_values([CUSTOMER_ID, EVENT_TIMESTAMP], kind="stable")
    for window in ("1h", "24h", "7d"):
        # closed="left": the window [t - w, t) excludes the transaction itself.
        rolling = by_customer.groupby(CUSTOMER_ID).rolling(
            window, on=EVENT_TIMESTAMP, closed="left"
        )[AMOUNT]
        for agg in ("count", "sum", "mean"):
            # The result is ordered like by_customer (customer, then time).
            values = pd.Series(getattr(rolling, agg)().to_numpy(), index=by_customer.index)
            if agg != "mean":
                values = values.fillna(0.0)  # an empty window counts and sums to zero
            features[f"customer_{agg}_{window}"] = values.reindex(df.index)
    features["amount_over_mean_7d"] = df[AMOUNT] / features["customer_mean_7d"]
    features["hour"] = df[EVENT_TIMESTAMP].dt.hour

    # Merchant fraud rate from labels known before the transaction (label time in
    # [t - 30d, t)), and merchant transaction count over [t - 30d, t).
    window_ns = pd.Timedelta(days=30).value
    events = df[EVENT_TIMESTAMP].array.asi8
    labels_known = df[LABEL_TIMESTAMP].array.asi8
    is_fraud = df[LABEL].to_numpy()
    rate = np.full(len(df), np.nan)
    count = np.zeros(len(df))
    for rows in df.groupby(MERCHANT_ID).indices.values():
        t = events[rows]
        order = np.argsort(labels_known[rows], kind="stable")
        known = labels_known[rows][order]
        frauds = np.concatenate([[0], np.cumsum(is_fraud[rows][order])])
        hi = np.searchsorted(known, t, side="left")
        lo = np.searchsorted(known, t - window_ns, side="left")
        n_known = hi - lo
        rate[rows] = np.where(
            n_known > 0, (frauds[hi] - frauds[lo]) / np.maximum(n_known, 1), np.nan
        )
        sorted_events = np.sort(t)
        count[rows] = np.searchsorted(sorted_events, t, side="left") - np.searchsorted(
            sorted_events, t - window_ns, side="left"
        )
    features["merchant_fraud_rate_30d"] = rate
    features["merchant_count_30d"] = count
    return features


def temporal_split(df: pd.DataFrame, days: int) -> tuple[np.ndarray, np.ndarray]:
    day = (df[EVENT_TIMESTAMP] - df[EVENT_TIMESTAMP].min()).dt.days.to_numpy()
    train = day < days - TEST_DAYS
    return train, ~train


def test_output_has_the_raw_contract(default_frame: pd.DataFrame) -> None:
    df = default_frame
    assert tuple(df.columns) == RAW_COLUMNS
    assert len(df) == 20_000
    assert df.dtypes.to_dict() == {
        TRANSACTION_ID: np.dtype(object),
        CUSTOMER_ID: np.dtype(object),
        MERCHANT_ID: np.dtype(object),
        AMOUNT: np.dtype("float64"),
        EVENT_TIMESTAMP: pd.DatetimeTZDtype("ns", "UTC"),
        LABEL: np.dtype("int64"),
        LABEL_TIMESTAMP: pd.DatetimeTZDtype("ns", "UTC"),
    }
    assert df[TRANSACTION_ID].is_unique
    assert df[CUSTOMER_ID].str.fullmatch(r"C\d{4}").all()
    assert df[MERCHANT_ID].str.fullmatch(r"M\d{3}").all()
    assert df[CUSTOMER_ID].nunique() <= 400
    assert df[MERCHANT_ID].nunique() <= 80
    assert (df[AMOUNT] > 0).all()
    assert np.isfinite(df[AMOUNT]).all()
    assert set(df[LABEL].unique()) == {0, 1}
    assert df[EVENT_TIMESTAMP].is_monotonic_increasing
    assert isinstance(df.index, pd.RangeIndex)
    assert df[EVENT_TIMESTAMP].min() >= pd.Timestamp("2026-01-01", tz="UTC")
    assert df[EVENT_TIMESTAMP].max() < pd.Timestamp("2026-02-05", tz="UTC")
    delay = df[LABEL_TIMESTAMP] - df[EVENT_TIMESTAMP]
    assert delay.min() >= pd.Timedelta(hours=1)
    assert delay.max() <= pd.Timedelta(hours=48)
    # Delays spread over the whole range, so some labels are still unknown a day later.
    assert (delay > pd.Timedelta(hours=24)).mean() > 0.3


def test_fraud_base_rate_follows_config(default_frame: pd.DataFrame) -> None:
    assert default_frame[LABEL].mean() == pytest.approx(0.02, abs=0.001)
    frame = generate_transactions(GeneratorConfig(rows=5_000, fraud_rate=0.05, seed=3))
    assert frame[LABEL].mean() == pytest.approx(0.05, abs=0.002)


def test_same_seed_gives_identical_frame_and_other_seed_differs(
    default_frame: pd.DataFrame,
) -> None:
    pd.testing.assert_frame_equal(generate_transactions(GeneratorConfig()), default_frame)
    other = generate_transactions(GeneratorConfig(seed=43))
    assert not other[AMOUNT].equals(default_frame[AMOUNT])
    assert not other[EVENT_TIMESTAMP].equals(default_frame[EVENT_TIMESTAMP])
    # Batches from different configs never share transaction ids.
    assert not set(other[TRANSACTION_ID]) & set(default_frame[TRANSACTION_ID])


def test_start_sets_the_period_and_naive_start_is_utc() -> None:
    frame = generate_transactions(GeneratorConfig(rows=500, days=3, start="2026-03-10"))
    assert frame[EVENT_TIMESTAMP].min() >= pd.Timestamp("2026-03-10", tz="UTC")
    assert frame[EVENT_TIMESTAMP].max() < pd.Timestamp("2026-03-13", tz="UTC")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rows": 0}, "GeneratorConfig.rows must be >= 1, got 0"),
        ({"customers": -3}, "GeneratorConfig.customers must be >= 1, got -3"),
        ({"merchants": 2.5}, "GeneratorConfig.merchants must be an integer, got 2.5"),
        ({"days": True}, "GeneratorConfig.days must be an integer, got True"),
        ({"seed": -1}, "GeneratorConfig.seed must be >= 0, got -1"),
        ({"fraud_rate": 0.7}, "GeneratorConfig.fraud_rate must be between 0.0 and 0.5, got 0.7"),
        ({"drift": 1.5}, "GeneratorConfig.drift must be between 0.0 and 1.0, got 1.5"),
        ({"drift": "high"}, "GeneratorConfig.drift must be a number, got 'high'"),
        ({"start": "soon"}, "GeneratorConfig.start must be an ISO date or timestamp"),
    ],
)
def test_invalid_config_is_refused_with_the_field_named(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("(", r"\(")):
        GeneratorConfig(**overrides)  # type: ignore[arg-type]


def test_features_carry_signal_only_in_combination(default_frame: pd.DataFrame) -> None:
    df = default_frame
    features = point_in_time_features(df)
    # Sanity of the point-in-time features: a customer's first transaction sees nothing.
    first_rows = df.groupby(CUSTOMER_ID).head(1).index
    assert (features.loc[first_rows, "customer_count_7d"] == 0).all()
    y = df[LABEL].to_numpy()
    train, test = temporal_split(df, GeneratorConfig().days)
    assert y[test].sum() > 60  # enough positives in the test days for a stable AUC

    model = HistGradientBoostingClassifier(random_state=0).fit(features[train], y[train])
    combined_auc = roc_auc_score(y[test], model.predict_proba(features[test])[:, 1])
    assert combined_auc > 0.93

    single_aucs: dict[str, float] = {}
    for column in [*features.columns, "raw_amount"]:
        values = df[[AMOUNT]] if column == "raw_amount" else features[[column]]
        one = HistGradientBoostingClassifier(random_state=0, max_iter=50)
        one.fit(values[train], y[train])
        model_auc = roc_auc_score(y[test], one.predict_proba(values[test])[:, 1])
        score_auc = roc_auc_score(y[test], values.iloc[:, 0].fillna(0).to_numpy()[test])
        single_aucs[column] = max(model_auc, score_auc, 1 - score_auc)
    assert max(single_aucs.values()) < 0.9, single_aucs
    # Every designed signal is visible on its own, so each feature family matters.
    for column in ("amount_over_mean_7d", "hour", "customer_count_1h", "merchant_fraud_rate_30d"):
        assert single_aucs[column] > 0.65, single_aucs
    assert combined_auc > max(single_aucs.values()) + 0.05


def test_drift_moves_amounts_hours_and_fraud_merchants(default_frame: pd.DataFrame) -> None:
    base = default_frame
    drifted = generate_transactions(GeneratorConfig(drift=0.5))

    def night_share(frame: pd.DataFrame) -> float:
        return float((frame[EVENT_TIMESTAMP].dt.hour < 6).mean())

    assert drifted[AMOUNT].mean() > 1.25 * base[AMOUNT].mean()
    assert night_share(drifted) > 2 * night_share(base)
    # Fraud moves to merchants that were clean: the merchants that carried most fraud
    # before carry clearly less of it after.
    base_fraud = base.loc[base[LABEL] == 1, MERCHANT_ID]
    drifted_fraud = drifted.loc[drifted[LABEL] == 1, MERCHANT_ID]
    top_fraud_merchants = base_fraud.value_counts().head(10).index
    assert drifted_fraud.isin(top_fraud_merchants).mean() < (
        base_fraud.isin(top_fraud_merchants).mean() - 0.15
    )
    # Same population and base rate: only the behaviour moved.
    assert drifted[LABEL].mean() == pytest.approx(base[LABEL].mean(), abs=0.001)
    assert set(drifted[CUSTOMER_ID]) <= {f"C{i:04d}" for i in range(1, 401)}

    # A model fitted before the drift loses accuracy on drifted data.
    y_base = base[LABEL].to_numpy()
    model = HistGradientBoostingClassifier(random_state=0).fit(point_in_time_features(base), y_base)
    same_world = generate_transactions(GeneratorConfig(seed=7))
    moved_world = generate_transactions(GeneratorConfig(seed=7, drift=1.0))
    auc_same = roc_auc_score(
        same_world[LABEL], model.predict_proba(point_in_time_features(same_world))[:, 1]
    )
    auc_moved = roc_auc_score(
        moved_world[LABEL], model.predict_proba(point_in_time_features(moved_world))[:, 1]
    )
    assert auc_moved < auc_same - 0.05


@pytest.mark.parametrize(
    "config",
    [
        GeneratorConfig(rows=1),
        GeneratorConfig(rows=10, fraud_rate=0.0),
        GeneratorConfig(rows=50, customers=1, merchants=1, days=1, fraud_rate=0.5),
    ],
)
def test_tiny_configs_still_give_valid_frames(config: GeneratorConfig) -> None:
    frame = generate_transactions(config)
    assert len(frame) == config.rows
    pd.testing.assert_frame_equal(validate_transactions(frame), frame)
