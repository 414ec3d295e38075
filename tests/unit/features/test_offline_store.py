"""The ASOF offline store answers exactly what Feast's own DuckDB store answers.

Feature rows are hand-made so that every rule of Feast's point-in-time join is exercised: a
row exactly at the event, rows after it, a latest row exactly one TTL old (kept) and one a
microsecond older (dropped), an entity without rows, an event before an entity's first row,
and the same entity row twice. Both stores run through the real feature repository; the
training frames must be equal to the bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kaizen.features import FeatureTables, build_training_frame, publish_feature_tables
from kaizen.features.tables import CUSTOMER_FEATURE_COLUMNS, MERCHANT_FEATURE_COLUMNS

T0 = pd.Timestamp("2026-03-10", tz="UTC")
WEEK = pd.Timedelta(days=7)  # customer_stats_fv's TTL
MONTH = pd.Timedelta(days=30)  # merchant_stats_fv's TTL
MICRO = pd.Timedelta(microseconds=1)


def feature_rows(
    key: str, columns: tuple[str, ...], rows: list[tuple[str, pd.Timestamp, float]]
) -> pd.DataFrame:
    """A source table: key, time, and each feature column a distinct value of the row's."""
    frame = pd.DataFrame(
        {
            key: [r[0] for r in rows],
            "event_timestamp": pd.to_datetime([r[1] for r in rows], utc=True),
        }
    )
    for index, column in enumerate(columns):
        values = np.array([r[2] for r in rows]) + index
        frame[column] = values.astype("int64") if "count" in column else values / 100
    return frame


def customer_rows(rows: list[tuple[str, pd.Timestamp, float]]) -> pd.DataFrame:
    return feature_rows("customer_id", CUSTOMER_FEATURE_COLUMNS, rows)


def merchant_rows(rows: list[tuple[str, pd.Timestamp, float]]) -> pd.DataFrame:
    return feature_rows("merchant_id", MERCHANT_FEATURE_COLUMNS, rows)


TABLES = FeatureTables(
    customer_stats=customer_rows(
        [
            ("C1", T0, 1.0),
            ("C1", T0 + pd.Timedelta(hours=5), 2.0),
            ("C1", T0 + pd.Timedelta(days=2), 3.0),
            ("C2", T0, 10.0),
            ("C3", T0 + pd.Timedelta(days=3), 20.0),
        ]
    ),
    merchant_stats=merchant_rows(
        [("M1", T0, 5.0), ("M1", T0 + pd.Timedelta(days=1), 6.0), ("M2", T0, 7.0)]
    ),
    as_of=T0 + pd.Timedelta(days=20),
)

EVENTS = [
    # (id, customer, merchant, time): what Feast's join must find
    ("exact", "C1", "M1", T0 + pd.Timedelta(hours=5)),  # a row exactly at the event
    ("between", "C1", "M1", T0 + pd.Timedelta(hours=6)),  # the 5 h row, not the day-2 one
    ("ttl-kept", "C2", "M2", T0 + WEEK),  # the latest row exactly one TTL old
    ("ttl-dropped", "C2", "M2", T0 + WEEK + MICRO),  # a microsecond older: nothing
    ("month-kept", "C1", "M2", T0 + MONTH),
    ("month-dropped", "C1", "M2", T0 + MONTH + MICRO),
    ("before-first", "C3", "M1", T0 + pd.Timedelta(days=1)),  # C3's first row is later
    ("unknown", "C9", "M9", T0 + pd.Timedelta(days=1)),  # no rows at all
    ("twin-a", "C1", "M1", T0 + pd.Timedelta(days=3)),  # the same keys and time twice
    ("twin-b", "C1", "M1", T0 + pd.Timedelta(days=3)),
]


def label_events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "transaction_id": [e[0] for e in EVENTS],
            "customer_id": [e[1] for e in EVENTS],
            "merchant_id": [e[2] for e in EVENTS],
            "amount": np.linspace(5.0, 50.0, len(EVENTS)),
            "event_timestamp": pd.to_datetime([e[3] for e in EVENTS], utc=True),
            "is_fraud": [0, 1] * (len(EVENTS) // 2),
        }
    )


def test_asof_joins_answer_what_feasts_duckdb_join_answers(
    repo_root: Path, kaizen_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feast.infra.offline_stores.duckdb import DuckDBOfflineStore

    from kaizen.features.offline_store import AsofDuckDBOfflineStore

    store = publish_feature_tables(TABLES, repo_root / "feature_repo", kaizen_home)
    assert isinstance(store._get_provider().offline_store, AsofDuckDBOfflineStore)
    ours = build_training_frame(store, label_events()).set_index("transaction_id")

    monkeypatch.setattr(
        AsofDuckDBOfflineStore,
        "get_historical_features",
        staticmethod(DuckDBOfflineStore.get_historical_features),
    )
    feasts = build_training_frame(store, label_events()).set_index("transaction_id")
    pd.testing.assert_frame_equal(ours, feasts, check_exact=True)

    # And what that is, by hand (missing stored values read as 0: "no activity").
    count_7d = ours["customer_stats_fv__txn_count_7d"]
    assert count_7d["exact"] == 2 + 6 and count_7d["between"] == 2 + 6
    assert count_7d["ttl-kept"] == 10 + 6 and count_7d["ttl-dropped"] == 0
    assert count_7d["before-first"] == 0 and count_7d["unknown"] == 0
    assert count_7d["twin-a"] == count_7d["twin-b"] == 3 + 6
    merchant = ours["merchant_stats_fv__txn_count_30d"]
    assert merchant["month-kept"] == 7 and merchant["month-dropped"] == 0
