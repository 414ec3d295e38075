"""The fast online path (``OnlineFeatureReader``) against the path it replaced and training.

The real ``feature_repo/`` is applied and materialized over a small history in its own
KAIZEN_HOME. The reference for "the previous results" is the lookup as it was before the
reader existed: the feature service resolved by name, ``get_online_features(...).to_df()``
and the DataFrame fill the training path used then (``_fill_features`` below).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kaizen.features import (
    FeatureRepoError,
    build_training_frame,
    feature_names,
    online_features,
)
from kaizen.features.store import (
    OnlineFeatureReader,
    _feature_service,
    _stored_feature_names,
    shared_feature_store,
)
from tests.support.serving import FEATURE_REPO, history, materialize_history

CONTEXT = "transaction_context_odfv__"
HISTORY = history(
    [
        ("H1", "C1", "M1", 100.0, "1D 10h", 1, "5D 18h"),
        ("H2", "C1", "M2", 200.0, "3D 10h", 0, "3D 12h"),
        ("A", "C1", "M1", 20.0, "5D 12h", 0, "7D"),
        ("S1", "C2", "M1", 10.0, "4D 08h", 0, "4D 20h"),
        ("S2", "C2", "M2", 90.0, "4D 08h", 0, "4D 20h"),
        ("D", "C3", "M1", 40.0, "6D 09h", 0, "8D"),
    ]
)


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The real feature repo applied and materialized over HISTORY in its own home."""
    home = tmp_path_factory.mktemp("online-reader-home")
    return SimpleNamespace(home=home, **vars(materialize_history(home, HISTORY)))


def _rows(moment: pd.Timestamp) -> list[dict[str, Any]]:
    """Known and unknown customers and merchants, in UTC and in another zone."""
    return [
        {"customer_id": "C1", "merchant_id": "M1", "amount": 60.0, "event_timestamp": moment},
        {"customer_id": "C2", "merchant_id": "M2", "amount": 0.0, "event_timestamp": moment},
        # Known customer, unknown merchant; a customer never seen; both never seen.
        {"customer_id": "C3", "merchant_id": "NEW", "amount": 7.25, "event_timestamp": moment},
        {"customer_id": "NEW", "merchant_id": "M1", "amount": 12.5, "event_timestamp": moment},
        {
            "customer_id": "NEW",
            "merchant_id": "NEW",
            "amount": 3.0,
            "event_timestamp": (moment + pd.Timedelta("13h")).tz_convert("Asia/Tokyo"),
        },
    ]


def _fill_features(
    retrieved: pd.DataFrame, names: list[str], stored: list[str], row_ids: pd.Series
) -> pd.DataFrame:
    """The DataFrame fill as it was: stored features missing -> 0, on-demand ones refused."""
    absent = [name for name in names if name not in retrieved.columns]
    if absent:
        raise FeatureRepoError(f"Feast returned no column(s) {absent}")
    features = retrieved[names].apply(pd.to_numeric, errors="coerce").astype("float64")
    features[stored] = features[stored].fillna(0.0)
    undefined = features.isna()
    if undefined.to_numpy().any():
        column = undefined.any().idxmax()
        first = int(undefined[column].to_numpy().argmax())
        raise ValueError(
            f"feature {column!r} is undefined for {int(undefined[column].sum())} row(s), "
            f"first {row_ids.iloc[first]!r}"
        )
    return features.reset_index(drop=True)


def _previous_online_features(store: Any, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """``online_features`` as it was before the reader: to_df() and the DataFrame fill."""
    service = _feature_service(store, "fraud_model_v1")
    requests = [
        {
            "customer_id": str(row["customer_id"]),
            "merchant_id": str(row["merchant_id"]),
            "amount": float(row["amount"]),
            "transaction_time": pd.Timestamp(row["event_timestamp"])
            .tz_convert("UTC")
            .to_pydatetime(),
        }
        for row in rows
    ]
    response = store.get_online_features(
        features=service, entity_rows=requests, full_feature_names=True
    ).to_df()
    keys = pd.DataFrame({key: [r[key] for r in requests] for key in ("customer_id", "merchant_id")})
    filled = _fill_features(
        response.reset_index(drop=True),
        feature_names(store),
        _stored_feature_names(store, "fraud_model_v1"),
        pd.Series([f"row {index}" for index in range(len(requests))]),
    )
    return pd.concat([keys, filled], axis=1)


def test_the_reader_returns_exactly_the_previous_values_for_known_and_unknown_ids(
    applied: SimpleNamespace,
) -> None:
    rows = _rows(applied.moment)
    reader = OnlineFeatureReader(applied.store)
    expected = _previous_online_features(applied.store, rows)

    pd.testing.assert_frame_equal(reader.frame(rows), expected, check_exact=True)
    pd.testing.assert_frame_equal(online_features(applied.store, rows), expected, check_exact=True)
    names = list(reader.names)
    assert names == feature_names(applied.store)
    np.testing.assert_array_equal(reader.matrix(rows), expected[names].to_numpy())
    one_by_one = np.vstack([reader.matrix([row]) for row in rows])
    np.testing.assert_array_equal(one_by_one, expected[names].to_numpy())
    # Unknown ids are served as no history, not refused; known ones have history.
    stored = list(reader.stored_names)
    assert (expected.loc[3:, [n for n in stored if n.startswith("customer_")]] == 0.0).all().all()
    assert expected.loc[0, "customer_stats_fv__txn_count_7d"] > 0
    assert expected.loc[4, f"{CONTEXT}amount_to_mean_7d"] == 1.0


def test_the_reader_answers_in_the_order_of_the_columns_asked_for(
    applied: SimpleNamespace,
) -> None:
    rows = _rows(applied.moment)
    reader = OnlineFeatureReader(applied.store)
    wanted = [reader.names[-1], reader.names[0], reader.names[3]]

    got = reader.matrix(rows, wanted)

    np.testing.assert_array_equal(got, reader.frame(rows)[wanted].to_numpy())
    with pytest.raises(FeatureRepoError, match=r"does not provide 'no_such_view__x'"):
        reader.matrix(rows, ["no_such_view__x"])


def test_the_reader_serves_what_training_sees_for_the_next_transaction(
    applied: SimpleNamespace,
) -> None:
    rows = _rows(applied.moment)[:4]
    events = pd.DataFrame(
        {
            "transaction_id": [f"N{index}" for index in range(len(rows))],
            "customer_id": [row["customer_id"] for row in rows],
            "merchant_id": [row["merchant_id"] for row in rows],
            "amount": [row["amount"] for row in rows],
            "event_timestamp": [applied.moment] * len(rows),
            "is_fraud": [0] * len(rows),
        }
    )
    reader = OnlineFeatureReader(applied.store)

    trained = build_training_frame(applied.store, events)

    names = list(reader.names)
    np.testing.assert_array_equal(reader.matrix(rows), trained[names].to_numpy())


def test_an_undefined_on_demand_value_is_refused_naming_feature_and_row_as_before(
    applied: SimpleNamespace,
) -> None:
    # log1p(-2) is undefined: a computed feature with no value is an error, never filled.
    rows = _rows(applied.moment)[:2]
    rows[1] = {**rows[1], "amount": -2.0}
    message = rf"feature '{CONTEXT}amount_log' is undefined for 1 row\(s\), first 'row 1'"

    with pytest.raises(ValueError, match=message):
        _previous_online_features(applied.store, rows)
    with pytest.raises(ValueError, match=message):
        OnlineFeatureReader(applied.store).matrix(rows)
    without_amount = {key: value for key, value in rows[0].items() if key != "amount"}
    with pytest.raises(ValueError, match=r"row 1 is missing \['amount'\]"):
        OnlineFeatureReader(applied.store).matrix([rows[0], without_amount])


def test_an_unknown_feature_service_is_named_when_the_reader_is_made(
    applied: SimpleNamespace,
) -> None:
    with pytest.raises(FeatureRepoError, match=r"'fraud_model_v9' is not in project.*v1"):
        OnlineFeatureReader(applied.store, "fraud_model_v9")


def test_readers_of_one_repo_and_home_share_one_store(applied: SimpleNamespace) -> None:
    first = shared_feature_store(applied.repo, applied.home)
    second = shared_feature_store(applied.repo / ".." / "feature_repo", str(applied.home))

    assert first is second
    np.testing.assert_array_equal(
        OnlineFeatureReader(first).matrix(_rows(applied.moment)),
        OnlineFeatureReader(applied.store).matrix(_rows(applied.moment)),
    )


def _previous_transaction_context(inputs: pd.DataFrame) -> pd.DataFrame:
    """The on-demand transform as it was before it moved to numpy arrays (the reference)."""
    amount = inputs["amount"].astype("float64")
    mean_7d = pd.to_numeric(inputs["txn_amount_mean_7d"], errors="coerce").astype("float64")
    hour = pd.to_datetime(inputs["transaction_time"], utc=True).dt.hour
    angle = 2.0 * np.pi * hour.astype("float64") / 24.0
    outputs = pd.DataFrame(index=inputs.index)
    outputs["amount_log"] = np.log1p(amount)
    outputs["amount_to_mean_7d"] = (amount / mean_7d.where(mean_7d > 0)).fillna(1.0)
    outputs["hour_of_day"] = hour.astype("int64")
    outputs["hour_sin"] = np.sin(angle)
    outputs["hour_cos"] = np.cos(angle)
    return outputs


@pytest.mark.parametrize("unit", ["ns", "us"])
def test_the_on_demand_transform_gives_the_previous_values_bit_for_bit(
    applied: SimpleNamespace, unit: str
) -> None:
    # The function Feast stored at apply time and runs for training and serving alike.
    odfv = applied.store.get_on_demand_feature_view("transaction_context_odfv")
    transform = odfv.feature_transformation.udf
    rng = np.random.default_rng(3)
    size = 20_000
    means = rng.lognormal(3.0, 1.0, size)
    means[rng.random(size) < 0.2] = np.nan  # no history
    means[rng.random(size) < 0.05] = 0.0  # a window that emptied
    amounts = rng.lognormal(3.0, 1.5, size)
    amounts[:4] = [0.0, -0.5, 1e9, 0.01]
    seconds = rng.integers(1_700_000_000, 1_800_000_000, size)
    inputs = pd.DataFrame(
        {
            "amount": amounts,
            "txn_amount_mean_7d": means,
            "transaction_time": pd.to_datetime(seconds, unit="s", utc=True).as_unit(unit),
        },
        index=pd.RangeIndex(5, 5 + size),
    )
    other_zone = inputs.assign(
        transaction_time=inputs["transaction_time"].dt.tz_convert("America/New_York")
    )
    object_means = inputs.assign(
        txn_amount_mean_7d=[None if np.isnan(v) else v for v in inputs["txn_amount_mean_7d"]]
    )

    for frame in (inputs, other_zone, object_means, inputs.iloc[:1]):
        pd.testing.assert_frame_equal(
            transform(frame), _previous_transaction_context(frame), check_exact=True
        )


def _random_rows(moment: pd.Timestamp, count: int, seed: int) -> list[dict[str, Any]]:
    """Known, unknown and mixed ids; amounts from cents to millions; times across zones."""
    rng = np.random.default_rng(seed)
    zones = ["UTC", "Asia/Tokyo", "America/New_York", "Europe/Paris"]
    rows = []
    for _ in range(count):
        at = moment + pd.Timedelta(seconds=int(rng.integers(-3 * 86_400, 86_400)))
        rows.append(
            {
                "customer_id": str(rng.choice(["C1", "C2", "C3", "NEW", "C9"])),
                "merchant_id": str(rng.choice(["M1", "M2", "NEW"])),
                "amount": float(np.round(rng.lognormal(3.0, 2.0), 2)) + 0.01,
                "event_timestamp": at.tz_convert(str(rng.choice(zones))),
            }
        )
    return rows


def test_on_demand_features_computed_in_process_equal_feasts_own_lookup_bit_for_bit(
    applied: SimpleNamespace,
) -> None:
    # The reader asks Feast for the stored features only and runs the on-demand view's
    # registered function itself; a served model must see exactly what Feast would give.
    reader = OnlineFeatureReader(applied.store)
    rows = _random_rows(applied.moment, 300, seed=11)

    expected = _previous_online_features(applied.store, rows)[list(reader.names)].to_numpy()

    assert reader.in_process
    np.testing.assert_array_equal(reader.matrix(rows), expected)
    one_by_one = np.vstack([reader.matrix([row]) for row in rows[:60]])
    np.testing.assert_array_equal(one_by_one, expected[:60])


@pytest.fixture(scope="module")
def renamed(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A copy of the repo with a service that renames its on-demand view (``with_name``)."""
    import shutil

    repo = tmp_path_factory.mktemp("renamed-repo") / "feature_repo"
    shutil.copytree(FEATURE_REPO, repo)
    (repo / "renamed_service.py").write_text(
        "from feast import FeatureService\n"
        "from feature_views import customer_stats_fv, transaction_context_odfv\n\n"
        "renamed = FeatureService(\n"
        '    name="renamed",\n'
        '    features=[customer_stats_fv, transaction_context_odfv.with_name("context")],\n'
        ")\n"
    )
    return materialize_history(tmp_path_factory.mktemp("renamed-home"), HISTORY, repo)


def test_a_service_the_reader_cannot_reproduce_is_read_through_feast_whole(
    renamed: SimpleNamespace,
) -> None:
    reader = OnlineFeatureReader(renamed.store, "renamed")
    rows = _random_rows(renamed.moment, 40, seed=5)
    requests = [
        {
            "customer_id": row["customer_id"],
            "merchant_id": row["merchant_id"],
            "amount": row["amount"],
            "transaction_time": row["event_timestamp"].tz_convert("UTC").to_pydatetime(),
        }
        for row in rows
    ]
    answer = renamed.store.get_online_features(
        features=renamed.store.get_feature_service("renamed"),
        entity_rows=requests,
        full_feature_names=True,
    ).to_df()

    got = reader.frame(rows)

    assert not reader.in_process
    assert "context__amount_log" in reader.names
    np.testing.assert_array_equal(
        got["context__amount_log"].to_numpy(), answer["context__amount_log"].to_numpy()
    )
    assert OnlineFeatureReader(renamed.store).in_process  # the other service still is


def test_an_on_demand_function_that_drops_a_feature_is_named(applied: SimpleNamespace) -> None:
    import dataclasses

    reader = OnlineFeatureReader(applied.store)
    assert reader._plan is not None
    step = reader._plan.steps[0]

    def forgetful(inputs: pd.DataFrame) -> pd.DataFrame:
        return step.transform(inputs).drop(columns=["hour_sin"])

    reader._plan = dataclasses.replace(
        reader._plan, steps=(dataclasses.replace(step, transform=forgetful),)
    )
    with pytest.raises(
        FeatureRepoError,
        match=r"on-demand view 'transaction_context_odfv' returned no 'hour_sin' for each of 1",
    ):
        reader.matrix(_rows(applied.moment)[:1])


def test_a_stored_view_deleted_after_the_reader_was_made_is_named(
    renamed: SimpleNamespace,
) -> None:
    reader = OnlineFeatureReader(renamed.store, "renamed")
    fast = OnlineFeatureReader(renamed.store)
    renamed.store.delete_feature_service("fraud_model_v1")
    renamed.store.delete_feature_view("merchant_stats_fv")

    with pytest.raises(
        FeatureRepoError,
        match=r"service 'fraud_model_v1' reads a view Feast no longer has.*merchant_stats_fv",
    ):
        fast.matrix(_rows(renamed.moment)[:1])
    reader.matrix(_rows(renamed.moment)[:1])  # a service without that view still answers
