"""Point-in-time correctness through the real feature repo: Feast joins, never leaks.

A small hand-made history goes through the real ``feature_repo/`` (apply, materialize,
``get_historical_features``, ``get_online_features``) in a temporary KAIZEN_HOME. The
leakage case: a huge purchase 30 seconds after a label event, and a fraud label that
arrives hours after another; rows describing both exist in the sources, stamped after
that label event, and only later label events may see them.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from kaizen.data.columns import RAW_COLUMNS
from kaizen.features import (
    FeatureRepoError,
    build_features,
    build_training_frame,
    compute_feature_tables,
    feature_data_dir,
    feature_names,
    online_features,
    publish_feature_tables,
)

DAY0 = pd.Timestamp("2026-05-01", tz="UTC")
CUSTOMER = "customer_stats_fv__"
MERCHANT = "merchant_stats_fv__"
CONTEXT = "transaction_context_odfv__"


def at(offset: str) -> pd.Timestamp:
    return DAY0 + pd.Timedelta(offset)


def transactions(rows: list[tuple]) -> pd.DataFrame:
    """Rows of (id, customer, merchant, amount, event offset, is_fraud, label offset)."""
    return pd.DataFrame(
        {
            "transaction_id": [row[0] for row in rows],
            "customer_id": [row[1] for row in rows],
            "merchant_id": [row[2] for row in rows],
            "amount": [float(row[3]) for row in rows],
            "event_timestamp": pd.to_datetime([at(row[4]) for row in rows], utc=True),
            "is_fraud": [row[5] for row in rows],
            "label_timestamp": pd.to_datetime([at(row[6]) for row in rows], utc=True),
        }
    )[list(RAW_COLUMNS)]


HISTORY = transactions(
    [
        # C1's fraud at M1 is only labelled on day 5 at 18:00, after A, B and C happened.
        ("H1", "C1", "M1", 100, "1D 10h", 1, "5D 18h"),
        ("H2", "C1", "M2", 200, "3D 10h", 0, "3D 12h"),
        ("A", "C1", "M1", 20, "5D 12h", 0, "7D"),
        ("B", "C1", "M3", 5000, "5D 12h 30s", 1, "6D"),  # 30 seconds after A
        ("C", "C1", "M1", 30, "5D 12h 30min", 0, "7D"),
        # Two purchases of C2 at the same instant, then a third ten minutes later.
        ("S1", "C2", "M1", 10, "4D 08h", 0, "4D 20h"),
        ("S2", "C2", "M2", 90, "4D 08h", 0, "4D 20h"),
        ("S3", "C2", "M2", 50, "4D 08h 10min", 0, "4D 21h"),
        ("D", "C3", "M1", 40, "6D 09h", 0, "8D"),
    ]
)


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The real feature repo applied and materialized over HISTORY in its own home."""
    home = tmp_path_factory.mktemp("point-in-time-home")
    repo = Path(__file__).resolve().parents[2] / "feature_repo"
    tables = compute_feature_tables(HISTORY)
    store = publish_feature_tables(tables, repo, home)
    frame = build_training_frame(store, HISTORY).set_index("transaction_id")
    return SimpleNamespace(store=store, tables=tables, frame=frame, home=home, repo=repo)


def test_a_purchase_right_after_a_label_event_stays_out_of_its_training_row(applied) -> None:
    a, b, c = (applied.frame.loc[name] for name in ("A", "B", "C"))

    # A sees only H1 and H2 (days 1 and 3): not itself, not B thirty seconds later.
    assert a[f"{CUSTOMER}txn_count_1h"] == 0
    assert a[f"{CUSTOMER}txn_count_7d"] == 2
    assert a[f"{CUSTOMER}txn_amount_sum_7d"] == pytest.approx(300.0)
    assert a[f"{CONTEXT}amount_to_mean_7d"] == pytest.approx(20 / 150)

    # B sees A but not itself.
    assert b[f"{CUSTOMER}txn_count_1h"] == 1
    assert b[f"{CUSTOMER}txn_amount_sum_1h"] == pytest.approx(20.0)
    assert b[f"{CONTEXT}amount_to_mean_7d"] == pytest.approx(5000 / (320 / 3))

    # C, a later label event, does see the 5000 purchase.
    assert c[f"{CUSTOMER}txn_count_1h"] == 2
    assert c[f"{CUSTOMER}txn_amount_sum_1h"] == pytest.approx(5020.0)
    assert c[f"{CUSTOMER}txn_amount_mean_7d"] == pytest.approx(5320 / 4)

    # The rows that would have leaked are in the source, stamped after A.
    source = pd.read_parquet(feature_data_dir(applied.home) / "customer_stats.parquet")
    after_a = source[(source.customer_id == "C1") & (source.event_timestamp > at("5D 12h"))]
    assert (after_a.txn_amount_sum_1h >= 5000).any()


def test_a_fraud_label_counts_only_for_events_after_it_was_known(applied) -> None:
    a, d = applied.frame.loc["A"], applied.frame.loc["D"]
    # A (day 5 12:00) uses M1's day-5 snapshot: H1 happened, its label is not known yet.
    assert a[f"{MERCHANT}txn_count_30d"] == 2  # H1 and S1
    assert a[f"{MERCHANT}label_count_30d"] == 1  # S1's label, known since day 4 20:00
    assert a[f"{MERCHANT}fraud_rate_30d"] == 0.0
    # D (day 6 09:00) uses the day-6 snapshot, taken after H1's label arrived at day 5 18:00.
    assert d[f"{MERCHANT}label_count_30d"] == 2
    assert d[f"{MERCHANT}fraud_rate_30d"] == pytest.approx(0.5)
    # H1's own row never knows its own label.
    assert applied.frame.loc["H1", f"{MERCHANT}fraud_rate_30d"] == 0.0


def test_events_at_the_same_instant_each_get_their_own_row(applied) -> None:
    s1, s2, s3 = (applied.frame.loc[name] for name in ("S1", "S2", "S3"))
    assert s1[f"{CUSTOMER}txn_count_1h"] == 0 and s2[f"{CUSTOMER}txn_count_1h"] == 0
    assert s1[f"{CONTEXT}amount_log"] == pytest.approx(np.log1p(10.0))
    assert s2[f"{CONTEXT}amount_log"] == pytest.approx(np.log1p(90.0))
    assert s3[f"{CUSTOMER}txn_amount_sum_1h"] == pytest.approx(100.0)


def test_training_frame_has_one_row_per_event_in_order_with_the_named_features(applied) -> None:
    frame = build_training_frame(applied.store, HISTORY.iloc[::-1])
    names = feature_names(applied.store)
    assert list(frame.transaction_id) == list(HISTORY.transaction_id[::-1])
    assert list(frame.columns) == [
        "transaction_id",
        "customer_id",
        "merchant_id",
        "event_timestamp",
        "is_fraud",
        "label_timestamp",
        *names,
    ]
    assert frame[names].dtypes.eq("float64").all()
    assert not frame[names].isna().any().any()
    assert frame.set_index("transaction_id").loc["B", f"{CONTEXT}hour_of_day"] == 12


def test_online_store_serves_what_training_sees_for_the_next_transaction(applied) -> None:
    moment = applied.tables.materialize_until
    request = {"customer_id": "C1", "merchant_id": "M1", "amount": 60.0, "event_timestamp": moment}
    served = online_features(applied.store, [request])
    event = transactions([("N", "C1", "M1", 60.0, "0D", 0, "0D")])
    event["event_timestamp"] = event["label_timestamp"] = moment
    trained = build_training_frame(applied.store, event)
    names = feature_names(applied.store)
    np.testing.assert_allclose(served[names].to_numpy(), trained[names].to_numpy())
    # Everything C1 did in the 7 days before the data ends, including the 5000 purchase.
    assert served.loc[0, f"{CUSTOMER}txn_count_7d"] == 5
    assert served.loc[0, f"{CUSTOMER}txn_amount_sum_7d"] == pytest.approx(5350.0)
    # M1 on day 8: 5 sales, 4 labels known (S1, H1, A, C), one of them fraud.
    assert served.loc[0, f"{MERCHANT}fraud_rate_30d"] == pytest.approx(0.25)


def test_unknown_customer_and_merchant_are_served_as_no_history(applied) -> None:
    served = online_features(
        applied.store,
        [
            {
                "customer_id": "NEW",
                "merchant_id": "NEW",
                "amount": 12.5,
                "event_timestamp": at("9D 23h"),
            }
        ],
    )
    names = feature_names(applied.store)
    stored = [name for name in names if not name.startswith(CONTEXT)]
    assert (served.loc[0, stored] == 0.0).all()
    assert served.loc[0, f"{CONTEXT}amount_to_mean_7d"] == 1.0
    assert served.loc[0, f"{CONTEXT}hour_of_day"] == 23


def test_bad_requests_are_rejected_with_the_row_and_field(applied) -> None:
    with pytest.raises(ValueError, match=r"row 1 is missing \['amount'\]"):
        online_features(
            applied.store,
            [
                {"customer_id": "C1", "merchant_id": "M1", "amount": 1.0, "event_timestamp": DAY0},
                {"customer_id": "C1", "merchant_id": "M1", "event_timestamp": DAY0},
            ],
        )
    with pytest.raises(ValueError, match="row 0: event_timestamp must be timezone-aware"):
        online_features(
            applied.store,
            [
                {
                    "customer_id": "C1",
                    "merchant_id": "M1",
                    "amount": 1.0,
                    "event_timestamp": pd.Timestamp("2026-05-01"),
                }
            ],
        )
    with pytest.raises(FeatureRepoError, match=r"'fraud_model_v9' is not in project.*v1"):
        build_training_frame(applied.store, HISTORY, feature_service="fraud_model_v9")
    with pytest.raises(ValueError, match=r"label events: missing column\(s\) \['is_fraud'\]"):
        build_training_frame(applied.store, HISTORY.drop(columns=["is_fraud"]))


def test_a_label_event_before_any_feature_row_gets_no_activity_not_dropped(applied) -> None:
    # C1 and M1 have feature rows, but none at or before day 0: nothing happened yet.
    early = transactions([("E", "C1", "M1", 5.0, "0D 01h", 0, "0D 02h")])
    frame = build_training_frame(applied.store, early)
    assert frame.transaction_id.tolist() == ["E"]
    row = frame.iloc[0]
    assert row[f"{CUSTOMER}txn_count_7d"] == 0 and row[f"{MERCHANT}label_count_30d"] == 0
    assert row[f"{CONTEXT}amount_to_mean_7d"] == 1.0  # no 7-day mean: the ratio's neutral value


def random_history(n: int = 240, seed: int = 5) -> pd.DataFrame:
    """Eight days of five customers at three merchants, about 10 % fraud: every 2-day window
    holds both classes."""
    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.integers(0, 8 * 86_400, n))
    events = DAY0 + pd.to_timedelta(offsets, unit="s")
    return pd.DataFrame(
        {
            "transaction_id": [f"T{i:03d}" for i in range(n)],
            "customer_id": rng.choice(["C1", "C2", "C3", "C4", "C5"], n),
            "merchant_id": rng.choice(["M1", "M2", "M3"], n),
            "amount": rng.uniform(5, 200, n).round(2),
            "event_timestamp": events,
            "is_fraud": (rng.uniform(size=n) < 0.1).astype(int),
            "label_timestamp": events + pd.Timedelta(hours=6),
        }
    )


def test_build_features_runs_the_whole_chain(repo_root: Path, kaizen_home: Path) -> None:
    n = 240
    raw = random_history(n)
    result = build_features(
        raw,
        repo_root / "feature_repo",
        kaizen_home,
        validation_days=2,
        test_days=2,
        warmup_days=2,
    )
    assert result.feature_views == [
        "customer_stats_fv",
        "merchant_stats_fv",
        "transaction_context_odfv",
    ]
    assert result.feature_names[0] == "customer_stats_fv__txn_count_1h"
    counts = result.row_counts
    assert counts["warmup"] + counts["train"] + counts["validation"] + counts["test"] == n
    assert result.train.event_timestamp.max() < result.validation.event_timestamp.min()
    assert result.validation.event_timestamp.max() < result.test.event_timestamp.min()
    assert result.test.event_timestamp.min() >= at("6D")
    assert result.source_paths["customer_stats"].is_file()
    assert result.source_paths["customer_stats"].is_relative_to(kaizen_home)
    manifest = json.loads(json.dumps(result.manifest()))
    assert manifest["feature_names"] == result.feature_names
    assert manifest["rows"]["train"] == len(result.train)
    assert manifest["windows"]["train"] == {
        "start": "2026-05-03T00:00:00+00:00",
        "end": "2026-05-05T00:00:00+00:00",
    }


def test_build_features_refuses_a_repo_whose_sources_point_elsewhere(
    repo_root: Path, kaizen_home: Path, tmp_path: Path
) -> None:
    # A repo whose data_sources.py ignores KAIZEN_FEAST_DATA_URI would train on other data.
    repo = tmp_path / "feature_repo"
    shutil.copytree(repo_root / "feature_repo", repo)
    elsewhere = tmp_path / "other-data"
    definitions = repo / "data_sources.py"
    definitions.write_text(
        re.sub(
            r"^_FEATURE_DATA_URI = .*$",
            f"_FEATURE_DATA_URI = {str(elsewhere)!r}",
            definitions.read_text(),
            count=1,
            flags=re.MULTILINE,
        )
    )
    with pytest.raises(FeatureRepoError, match=r"reads .*other-data/.*KAIZEN_FEAST_DATA_URI"):
        build_features(random_history(), repo, kaizen_home, 2, 2, warmup_days=2)
    assert not (kaizen_home / "feast" / "registry.db").exists()  # nothing was published


def feast_lookup(store: object, transaction_time: object) -> dict:
    """Feast's own online lookup of the service for C1 at M1 with this request time."""
    return store.get_online_features(  # type: ignore[attr-defined]
        features=store.get_feature_service("fraud_model_v1"),  # type: ignore[attr-defined]
        entity_rows=[
            {
                "customer_id": "C1",
                "merchant_id": "M1",
                "amount": 60.0,
                "transaction_time": transaction_time,
            }
        ],
    ).to_dict()


@pytest.mark.parametrize(
    ("transaction_time", "hour"),
    [
        (1764777960, 16),  # epoch seconds: 2025-12-03T16:06:00Z
        (1764777960123, 16),  # epoch milliseconds
        (1764777960.5, 16),
        ("2025-12-03T17:46:00+01:00", 16),  # ISO text with an offset
        ("1764777960", 16),  # epoch seconds sent as text: still a number
    ],
)
def test_feast_reads_request_times_as_seconds_milliseconds_or_iso_text(
    applied: SimpleNamespace, transaction_time: object, hour: int
) -> None:
    assert feast_lookup(applied.store, transaction_time)["hour_of_day"] == [hour]


@pytest.mark.parametrize(
    ("transaction_time", "message"),
    [
        (1764777960 * 10**9, "is not epoch seconds or milliseconds"),  # nanoseconds
        (None, "transaction_time is missing in 1 of 1 row"),
    ],
)
def test_feast_refuses_a_request_time_that_is_not_seconds_or_milliseconds(
    applied: SimpleNamespace, transaction_time: object, message: str
) -> None:
    with pytest.raises(Exception, match=message):
        feast_lookup(applied.store, transaction_time)
