"""Temporal train/validation/test split of a training frame, after a warm-up period.

Windows are whole UTC days counted back from the end of the data's last day: test is the
latest ``test_days``, validation the ``validation_days`` before it, and training everything
before that except the first ``warmup_days``, whose 7-day windows still miss history that
predates the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kaizen.data.columns import EVENT_TIMESTAMP, LABEL

DEFAULT_VALIDATION_DAYS = 5
DEFAULT_TEST_DAYS = 5
DEFAULT_WARMUP_DAYS = 7


@dataclass(frozen=True)
class TimeWindow:
    """A half-open time interval ``[start, end)`` in UTC."""

    start: pd.Timestamp
    end: pd.Timestamp

    def contains(self, timestamps: pd.Series) -> pd.Series:
        """Boolean mask of ``timestamps`` inside the window."""
        return (timestamps >= self.start) & (timestamps < self.end)

    def to_dict(self) -> dict[str, str]:
        """ISO-8601 bounds, for run metadata."""
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


@dataclass(frozen=True)
class SplitWindows:
    """The four consecutive windows of a temporal split."""

    warmup: TimeWindow
    train: TimeWindow
    validation: TimeWindow
    test: TimeWindow

    def splits(self) -> tuple[tuple[str, TimeWindow], ...]:
        """The windows rows are split into, by name, in time order (the warm-up is none)."""
        return (("train", self.train), ("validation", self.validation), ("test", self.test))

    def to_dict(self) -> dict[str, dict[str, str]]:
        """Window name to ISO-8601 bounds, for run metadata."""
        return {
            "warmup": self.warmup.to_dict(),
            "train": self.train.to_dict(),
            "validation": self.validation.to_dict(),
            "test": self.test.to_dict(),
        }


def split_windows(
    timestamps: pd.Series,
    validation_days: int = DEFAULT_VALIDATION_DAYS,
    test_days: int = DEFAULT_TEST_DAYS,
    warmup_days: int = DEFAULT_WARMUP_DAYS,
) -> SplitWindows:
    """Compute the warm-up, train, validation and test windows covering ``timestamps``.

    Args:
        timestamps: Event timestamps (timezone-aware).
        validation_days: Length of the validation window, >= 1.
        test_days: Length of the test window (the latest days), >= 1.
        warmup_days: Days at the start that belong to no split, >= 0.

    Returns:
        Consecutive day-aligned windows from the first day of the data to the end of its
        last day.

    Raises:
        ValueError: on a bad day count, naive or missing timestamps, or when the data is too
            short to leave at least one training day (the message gives the arithmetic).
    """
    for name, value, minimum in (
        ("validation_days", validation_days, 1),
        ("test_days", test_days, 1),
        ("warmup_days", warmup_days, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(
                f"temporal split: {name} must be an integer >= {minimum}, got {value!r}"
            )
    if timestamps.empty or timestamps.isna().any():
        raise ValueError("temporal split: event timestamps are empty or contain missing values")
    if not isinstance(timestamps.dtype, pd.DatetimeTZDtype):
        raise ValueError(
            f"temporal split: event timestamps must be timezone-aware, got dtype {timestamps.dtype}"
        )
    utc = timestamps.dt.tz_convert("UTC")
    first_day = utc.min().floor("D")
    data_end = utc.max().floor("D") + pd.Timedelta(days=1)
    day = pd.Timedelta(days=1)
    test = TimeWindow(data_end - test_days * day, data_end)
    validation = TimeWindow(test.start - validation_days * day, test.start)
    warmup = TimeWindow(first_day, first_day + warmup_days * day)
    if warmup.end >= validation.start:
        total_days = (data_end - first_day).days
        raise ValueError(
            f"temporal split: the data covers {total_days} day(s) "
            f"({first_day.date()} to {(data_end - day).date()}), but warm-up {warmup_days} + "
            f"validation {validation_days} + test {test_days} days leave no training day; "
            "use more data or shorter windows"
        )
    return SplitWindows(
        warmup=warmup,
        train=TimeWindow(warmup.end, validation.start),
        validation=validation,
        test=test,
    )


def check_windows_have_rows(
    timestamps: pd.Series,
    windows: SplitWindows,
    *,
    validation_days: int,
    test_days: int,
    warmup_days: int,
    labels: pd.Series | None = None,
) -> None:
    """Refuse windows that are empty or too small to train or evaluate on.

    A window is too small when its labels hold one class only: training needs both in the
    training and validation windows (class weights, ROC-AUC for early stopping) and the
    evaluation needs both in the test window. Run before anything is written, so data that
    cannot be split changes nothing.

    Args:
        timestamps: The transactions' event times.
        windows: Output of ``split_windows``.
        validation_days: The setting behind the validation window, named in the message.
        test_days: The setting behind the test window.
        warmup_days: The setting behind the warm-up.
        labels: The transactions' 0/1 labels, aligned with ``timestamps``; without them
            only empty windows are refused.

    Raises:
        ValueError: naming every refused window, its dates, its rows and the setting that
            sets it.
    """
    settings = {
        "train": f"the days left after warmup_days={warmup_days}, "
        f"validation_days={validation_days} and test_days={test_days}",
        "validation": f"validation_days={validation_days}",
        "test": f"test_days={test_days} (the latest days)",
    }
    values = None if labels is None else labels.to_numpy()
    problems = []
    for name, window in windows.splits():
        inside = window.contains(timestamps).to_numpy()
        dates = f"the {name} window {window.start.date()}..{window.end.date()}"
        if not inside.any():
            problems.append(
                f"{dates} has 0 of the {len(timestamps)} transactions (set by {settings[name]})"
            )
        elif values is not None and len(classes := np.unique(values[inside])) < 2:
            problems.append(
                f"{dates} has {int(inside.sum())} transactions, all with {LABEL}="
                f"{classes[0]} (set by {settings[name]}); training and evaluation need both "
                "classes in every window"
            )
    if problems:
        raise ValueError(
            "temporal split: " + "; ".join(problems) + "; nothing was written. Use data that "
            "covers every window with both classes, or change the window lengths"
        )


def split_by_windows(
    frame: pd.DataFrame, windows: SplitWindows
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Cut ``frame`` into train, validation and test by ``event_timestamp``.

    Args:
        frame: A training frame with ``event_timestamp``.
        windows: Output of ``split_windows``; rows in the warm-up window are dropped.

    Returns:
        ``(train, validation, test)``, each sorted by time with a fresh index.

    Raises:
        ValueError: if a window holds no row (naming the window and its bounds).
    """
    if EVENT_TIMESTAMP not in frame.columns:
        raise ValueError(f"temporal split: the frame has no {EVENT_TIMESTAMP!r} column")
    # One stable sort of the times, then each window is a slice of that order: one copy of
    # the rows per window instead of a sorted copy of the frame and a copy per mask.
    timestamps = frame[EVENT_TIMESTAMP]
    order = timestamps.argsort(kind="stable").to_numpy()
    ordered = timestamps.iloc[order]
    parts = []
    for name, window in windows.splits():
        first, last = ordered.searchsorted([window.start, window.end], side="left")
        part = frame.take(order[first:last]).reset_index(drop=True)
        if part.empty:
            raise ValueError(
                f"temporal split: the {name} window [{window.start}, {window.end}) has no rows"
            )
        parts.append(part)
    return parts[0], parts[1], parts[2]


def temporal_split(
    frame: pd.DataFrame,
    validation_days: int = DEFAULT_VALIDATION_DAYS,
    test_days: int = DEFAULT_TEST_DAYS,
    warmup_days: int = DEFAULT_WARMUP_DAYS,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split a training frame by time: train earliest, then validation, then test.

    Args:
        frame: A training frame with ``event_timestamp``.
        validation_days: Length of the validation window, >= 1.
        test_days: Length of the test window (the latest days), >= 1.
        warmup_days: Days at the start whose rows are dropped, >= 0: their 7-day customer
            windows are incomplete because the data has no earlier history.

    Returns:
        ``(train, validation, test)``, each sorted by time with a fresh index.

    Raises:
        ValueError: if a parameter is invalid, the data is too short, or a window is empty.
    """
    if EVENT_TIMESTAMP not in frame.columns:
        raise ValueError(f"temporal split: the frame has no {EVENT_TIMESTAMP!r} column")
    windows = split_windows(frame[EVENT_TIMESTAMP], validation_days, test_days, warmup_days)
    return split_by_windows(frame, windows)
