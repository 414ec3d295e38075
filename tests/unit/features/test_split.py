"""temporal_split: warm-up dropped, then train, validation and test in time order."""

from __future__ import annotations

import pandas as pd
import pytest

from kaizen.features import split_windows, temporal_split


def frame_over(days: int, per_day: int = 4) -> pd.DataFrame:
    """``per_day`` rows on each of ``days`` days from 2026-01-01, shuffled."""
    stamps = [
        pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(days=day, hours=1 + 5 * slot)
        for day in range(days)
        for slot in range(per_day)
    ]
    frame = pd.DataFrame(
        {"transaction_id": [f"T{i}" for i in range(len(stamps))], "event_timestamp": stamps}
    )
    return frame.sample(frac=1.0, random_state=3).reset_index(drop=True)


def test_split_is_warmup_then_train_then_validation_then_test_by_whole_days() -> None:
    train, validation, test = temporal_split(
        frame_over(35), validation_days=5, test_days=5, warmup_days=7
    )
    day = pd.Timestamp("2026-01-01", tz="UTC")
    assert train.event_timestamp.min() >= day + pd.Timedelta(days=7)
    assert train.event_timestamp.max() < day + pd.Timedelta(days=25)
    assert validation.event_timestamp.min() >= day + pd.Timedelta(days=25)
    assert validation.event_timestamp.max() < day + pd.Timedelta(days=30)
    assert test.event_timestamp.min() >= day + pd.Timedelta(days=30)
    assert (len(train), len(validation), len(test)) == (18 * 4, 5 * 4, 5 * 4)
    assert train.event_timestamp.is_monotonic_increasing
    assert list(train.index) == list(range(len(train)))


def test_windows_are_reported_with_their_bounds() -> None:
    windows = split_windows(frame_over(20).event_timestamp, 3, 2, 4)
    assert windows.to_dict() == {
        "warmup": {"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-05T00:00:00+00:00"},
        "train": {"start": "2026-01-05T00:00:00+00:00", "end": "2026-01-16T00:00:00+00:00"},
        "validation": {
            "start": "2026-01-16T00:00:00+00:00",
            "end": "2026-01-19T00:00:00+00:00",
        },
        "test": {"start": "2026-01-19T00:00:00+00:00", "end": "2026-01-21T00:00:00+00:00"},
    }


def test_zero_warmup_keeps_the_first_day() -> None:
    train, _, _ = temporal_split(frame_over(10), 2, 2, warmup_days=0)
    assert train.event_timestamp.min() == pd.Timestamp("2026-01-01 01:00", tz="UTC")


def test_data_too_short_for_the_windows_says_how_many_days_are_missing() -> None:
    with pytest.raises(
        ValueError, match=r"covers 10 day\(s\).*warm-up 7 \+ validation 2 \+ test 2"
    ):
        temporal_split(frame_over(10), 2, 2, 7)


def test_an_empty_window_is_named() -> None:
    frame = frame_over(30)
    # A gap of five days right where validation falls.
    gap = (frame.event_timestamp >= "2026-01-21") & (frame.event_timestamp < "2026-01-26")
    with pytest.raises(ValueError, match=r"the validation window \[2026-01-21 .* has no rows"):
        temporal_split(frame[~gap], validation_days=5, test_days=5, warmup_days=7)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"validation_days": 0}, "validation_days must be an integer >= 1, got 0"),
        ({"test_days": 2.5}, "test_days must be an integer >= 1, got 2.5"),
        ({"warmup_days": -1}, "warmup_days must be an integer >= 0, got -1"),
    ],
)
def test_bad_window_lengths_are_rejected(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        temporal_split(frame_over(30), **arguments)


def test_naive_timestamps_are_rejected() -> None:
    frame = frame_over(30)
    frame["event_timestamp"] = frame.event_timestamp.dt.tz_localize(None)
    with pytest.raises(ValueError, match="must be timezone-aware"):
        temporal_split(frame)
