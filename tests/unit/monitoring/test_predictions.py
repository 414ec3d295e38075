"""The prediction log: bounded buffer, batched Parquet writes by date and version, no loss."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from prometheus_client import REGISTRY

from kaizen.monitoring.predictions import LoggedPrediction, PredictionLog, read_predictions
from kaizen.platform.storage import LocalObjectStore

NAMES = ("amount_zscore", "merchant_risk")


def row(pid: str, version: int = 1, day: int = 3, score: float = 0.25) -> LoggedPrediction:
    return LoggedPrediction(
        prediction_id=pid,
        time=datetime(2026, 12, day, 9, 30, tzinfo=UTC),
        model_version=version,
        variant="champion",
        score=score,
        decision=score >= 0.5,
        features=(float(len(pid)), -1.5),
        feature_names=NAMES,
    )


def dropped(model: str, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "kaizen_prediction_log_dropped_rows_total", {"model_name": model, "reason": reason}
    )
    return value or 0.0


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def parquet_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.parquet"))


def test_a_flush_writes_one_parquet_file_per_date_and_version(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    log = PredictionLog("m-partitions", store)
    log.record([row("a"), row("bb", score=0.9), row("c", version=2), row("d", day=4)])

    assert log.flush() == 4

    folder = tmp_path / "predictions" / "m-partitions"
    assert [p.parent.relative_to(folder).as_posix() for p in parquet_files(folder)] == [
        "date=2026-12-03/model_version=1",
        "date=2026-12-03/model_version=2",
        "date=2026-12-04/model_version=1",
    ]
    frame = pd.read_parquet(folder).sort_values("prediction_id").reset_index(drop=True)
    assert list(frame["prediction_id"]) == ["a", "bb", "c", "d"]
    assert list(frame["model_version"].astype(int)) == [1, 1, 2, 1]
    assert list(frame["date"].astype(str)) == ["2026-12-03"] * 3 + ["2026-12-04"]
    assert list(frame["decision"]) == [False, True, False, False]
    assert frame.loc[1, "amount_zscore"] == 2.0 and frame.loc[1, "merchant_risk"] == -1.5
    assert frame.loc[0, "time"] == pd.Timestamp("2026-12-03 09:30", tz="UTC")
    assert set(frame["variant"]) == {"champion"} and set(frame["model_name"]) == {"m-partitions"}
    # The same rows through the store's own reader (S3 or local).
    again = read_predictions(store, "m-partitions")
    assert sorted(again["prediction_id"]) == ["a", "bb", "c", "d"]
    assert sorted(read_predictions(store, "m-partitions", since="2026-12-04")["prediction_id"]) == [
        "d"
    ]
    assert log.flush() == 0  # nothing left: no empty file either
    assert len(parquet_files(folder)) == 3


def test_a_full_buffer_drops_and_counts_the_rest(tmp_path: Path) -> None:
    log = PredictionLog("m-full", LocalObjectStore(tmp_path), max_rows=3, flush_rows=3)
    before = dropped("m-full", "buffer_full")

    assert log.record([row("a"), row("b")]) == 2
    assert log.record([row("c"), row("d"), row("e")]) == 1

    assert dropped("m-full", "buffer_full") - before == 2
    log.flush()
    assert sorted(read_predictions(LocalObjectStore(tmp_path), "m-full")["prediction_id"]) == [
        "a",
        "b",
        "c",
    ]


def test_the_writer_thread_flushes_on_size_and_on_interval(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    by_size = PredictionLog("m-size", store, max_rows=10, flush_rows=2, flush_seconds=3600)
    by_time = PredictionLog("m-time", store, flush_seconds=0.2)
    by_size.start()
    by_time.start()
    try:
        by_size.record([row("a"), row("b")])
        by_time.record([row("c")])
        wait_for(lambda: len(read_predictions(store, "m-size")) == 2, "the size-triggered write")
        wait_for(lambda: len(read_predictions(store, "m-time")) == 1, "the interval write")
    finally:
        by_size.close()
        by_time.close()


def test_close_writes_what_is_still_buffered(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    log = PredictionLog("m-close", store, flush_seconds=3600)
    log.start()
    log.record([row("a"), row("b")])
    assert read_predictions(store, "m-close").empty

    assert log.close() == 2
    assert sorted(read_predictions(store, "m-close")["prediction_id"]) == ["a", "b"]


def test_a_refused_write_is_kept_and_written_once_the_store_recovers(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    blocker = tmp_path / "predictions" / "m-retry"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the log's folder should be")
    log = PredictionLog("m-retry", store, max_rows=3, flush_rows=3)
    log.record([row("a"), row("b")])

    assert log.flush() == 0  # the store refused: the rows are kept
    log.record([row("c"), row("d")])  # room for one more only
    assert dropped("m-retry", "buffer_full") == 1

    blocker.unlink()
    assert log.flush() == 3
    assert sorted(read_predictions(store, "m-retry")["prediction_id"]) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"max_rows": 0}, "max_rows must be at least 1, got 0"),
        ({"max_rows": 5, "flush_rows": 6}, "flush_rows must be within [1, max_rows=5], got 6"),
        ({"flush_seconds": 0.0}, "flush_seconds must be positive, got 0.0"),
    ],
)
def test_limits_out_of_range_are_named(
    tmp_path: Path, limits: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError) as error:
        PredictionLog("m", LocalObjectStore(tmp_path), **limits)  # type: ignore[arg-type]
    assert str(error.value) == message
