"""The batched online-store load writes exactly the rows Feast's own materialize writes.

The same feature tables are published twice into two homes, once through
``kaizen.features.online_load`` and once through ``FeatureStore.materialize`` (the path every
store it does not support takes), then published again with changed rows so that the second
write updates existing rows. The two SQLite online stores must hold the same rows, byte for
byte in every column. The tables exercise what could tell the two apart: a row exactly at the
interval's start and end, an entity whose only row is older than the interval (not written),
NaN and -0.0 in float features, nanoseconds in a timestamp, a non-ASCII key, and an entity
whose newer row replaces the one loaded by the first publish.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kaizen.features import FeatureTables, publish_feature_tables
from kaizen.features import online_load as online_load_module
from kaizen.features.tables import (
    CUSTOMER_FEATURE_COLUMNS,
    FEATURE_AVAILABILITY_DELAY,
    MERCHANT_FEATURE_COLUMNS,
)

AS_OF = pd.Timestamp("2026-03-30 12:00", tz="UTC")
END = AS_OF + FEATURE_AVAILABILITY_DELAY
START = END - pd.Timedelta(days=30)  # the longest TTL (merchant_stats_fv)
TABLE_NAMES = ("kaizen_customer_stats_fv", "kaizen_merchant_stats_fv")


def frame(
    key: str, columns: tuple[str, ...], rows: list[tuple[str, pd.Timestamp, float]]
) -> pd.DataFrame:
    out = pd.DataFrame(
        {key: [r[0] for r in rows], "event_timestamp": pd.to_datetime([r[1] for r in rows])}
    )
    for index, column in enumerate(columns):
        values = np.array([r[2] for r in rows], dtype="float64") * (index + 1)
        if "count" in column:
            out[column] = np.nan_to_num(values, nan=0.0).astype("int64")
        else:
            out[column] = values
    return out


def tables(shift: float) -> FeatureTables:
    customers = frame(
        "customer_id",
        CUSTOMER_FEATURE_COLUMNS,
        [
            ("C1", AS_OF - pd.Timedelta(days=2), 1.5 + shift),
            ("C1", END, 2.25 + shift),  # exactly at the interval's end: the latest
            ("C2", END - pd.Timedelta(hours=3, nanoseconds=1_501), 3.0 + shift),
            ("C3", END - pd.Timedelta(days=6), float("nan")),  # NaN features
            ("C4", START - pd.Timedelta(days=1), 4.0),  # older than the interval
            ("Ç-5", START, -0.0),  # exactly at its start, non-ASCII key, -0.0
        ],
    )
    merchants = frame(
        "merchant_id",
        MERCHANT_FEATURE_COLUMNS,
        [
            ("M1", START + pd.Timedelta(days=1), 0.125 + shift),
            ("M1", AS_OF.floor("D"), 0.5 + shift),
            ("M2", AS_OF.floor("D") - pd.Timedelta(days=29), 7.0),
        ],
    )
    return FeatureTables(customer_stats=customers, merchant_stats=merchants, as_of=AS_OF)


def stored_rows(home: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(home / "feast" / "online_store.db") as connection:
        return {
            name: connection.execute(
                "SELECT entity_key, feature_name, value, value_text, event_ts, created_ts "
                f'FROM "{name}" ORDER BY entity_key, feature_name'
            ).fetchall()
            for name in TABLE_NAMES
        }


def publish_twice(repo: Path, home: Path) -> dict[str, list[tuple[object, ...]]]:
    publish_feature_tables(tables(0.0), repo, home)
    store = publish_feature_tables(tables(10.0), repo, home)
    assert store.config.online_store.type == "sqlite"
    return stored_rows(home)


def test_the_batched_load_writes_the_rows_feasts_materialize_writes(
    repo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = repo_root / "feature_repo"
    written: list[int] = []
    load = online_load_module.load_latest_rows

    def counting_load(*args: object, **kwargs: object) -> int:
        written.append(load(*args, **kwargs))  # type: ignore[arg-type]
        return written[-1]

    monkeypatch.setattr(online_load_module, "load_latest_rows", counting_load)
    ours = publish_twice(repo, tmp_path / "ours")
    assert written, "the batched load was not used for the embedded SQLite store"

    monkeypatch.setattr(online_load_module, "supported", lambda store, views: "Feast's path")
    feasts = publish_twice(repo, tmp_path / "feasts")

    assert ours == feasts
    customers = {row[0] for row in ours["kaizen_customer_stats_fv"]}
    assert len(customers) == 4  # C1, C2, C3 and Ç-5; C4's only row is older than the interval
    values = {(row[1], row[3]) for row in ours["kaizen_customer_stats_fv"]}
    assert ("txn_amount_sum_1h", "24.5") in values  # C1 at the end: (2.25 + 10) x 2
    assert ("txn_amount_sum_1h", "-0.0") in values
    assert any(row[2] == b"" and row[3] is None for row in ours["kaizen_customer_stats_fv"])
