"""Point-in-time feature tables computed from raw transactions.

Two tables feed the batch sources of ``feature_repo/``. Every row stamped ``t`` describes
only what happened strictly before ``t``:

``customer_stats``: a row at every transaction time, and one final row per customer
    For a row stamped ``t`` and each window ``w`` in 1h, 24h, 7d: the count, sum and mean
    amount of the customer's transactions with ``t - w < event_timestamp < t``. The row at
    a transaction's own time is what Feast joins to that transaction as a label event, so
    its windows are exact and never contain the transaction itself (nor one at the same
    instant). The final row, at ``as_of + FEATURE_AVAILABILITY_DELAY``, holds the windows
    just after the data ends, including the customer's last transaction; it is what
    materialization puts in the online store for the next, live transaction.

``merchant_stats``: a row at the merchant's first transaction, then 00:00 UTC snapshots
    For a row stamped ``t``: transactions with ``t - 30d < event_timestamp < t``, and labels
    with ``t - 30d < label_timestamp < t`` (a label counts only once it was known, whatever
    the age of its transaction), their count and the share of frauds among them. The first
    row (all zero) gives the transactions of the merchant's first day a row to join. After
    it, a snapshot is written only where it is read: at the midnight starting each day on
    which the merchant has a transaction (the row Feast joins to those transactions) and at
    the midnight starting the day of ``as_of`` (what materialization puts in the online
    store). Not every day, because rows then grew with merchants x days, most never read;
    each row written is the one the daily table had, so every join gets the same values.

A mean over an empty window and a fraud rate without labels are 0; the counts say why.
Rows stop at the data's ``as_of`` time, so nothing is claimed about a time the data does
not cover. Everything is vectorised: each window is a difference of two prefix sums found
by binary search over values sorted by (entity, time).

Why rows at transaction times and not at every window change: Feast's file offline store
joins each label event with all rows of its entity before filtering by time, so its cost
grows with (events x rows) per entity; one row per transaction keeps that product small
while every label event still gets its exact windows.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

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
from kaizen.platform.fileio import atomic_path

# The final customer row is stamped this long after as_of, so that "strictly before" its
# stamp still includes a transaction at as_of itself; far below any real spacing.
FEATURE_AVAILABILITY_DELAY = pd.Timedelta(milliseconds=1)

CUSTOMER_WINDOWS: dict[str, pd.Timedelta] = {
    "1h": pd.Timedelta(hours=1),
    "24h": pd.Timedelta(hours=24),
    "7d": pd.Timedelta(days=7),
}
MERCHANT_WINDOW = pd.Timedelta(days=30)
MERCHANT_WINDOW_NAME = "30d"

CUSTOMER_STATS_FILE = "customer_stats.parquet"
MERCHANT_STATS_FILE = "merchant_stats.parquet"

CUSTOMER_FEATURE_COLUMNS: tuple[str, ...] = tuple(
    column
    for window in CUSTOMER_WINDOWS
    for column in (f"txn_count_{window}", f"txn_amount_sum_{window}", f"txn_amount_mean_{window}")
)
MERCHANT_FEATURE_COLUMNS: tuple[str, ...] = (
    f"txn_count_{MERCHANT_WINDOW_NAME}",
    f"label_count_{MERCHANT_WINDOW_NAME}",
    f"fraud_rate_{MERCHANT_WINDOW_NAME}",
)


@dataclass(frozen=True)
class FeatureTables:
    """The batch-source tables of the feature views.

    Attributes:
        customer_stats: ``customer_id``, ``event_timestamp`` and ``CUSTOMER_FEATURE_COLUMNS``.
        merchant_stats: ``merchant_id``, ``event_timestamp`` and ``MERCHANT_FEATURE_COLUMNS``.
        as_of: The latest time the transactions describe (their last event or label time);
            no row is stamped later than ``as_of + FEATURE_AVAILABILITY_DELAY``.
    """

    customer_stats: pd.DataFrame
    merchant_stats: pd.DataFrame
    as_of: pd.Timestamp

    @property
    def materialize_until(self) -> pd.Timestamp:
        """End of a materialization interval that takes in every entity's latest row."""
        return self.as_of + FEATURE_AVAILABILITY_DELAY


def validate_transactions(transactions: pd.DataFrame) -> None:
    """Check that a raw transaction frame can be turned into features.

    Args:
        transactions: Raw transactions with the columns of ``kaizen.data.columns.RAW_COLUMNS``.

    Raises:
        ValueError: naming the column, the problem and the first offending transaction.
    """
    missing = [column for column in RAW_COLUMNS if column not in transactions.columns]
    if missing:
        raise ValueError(
            f"transactions: missing column(s) {missing}; expected {list(RAW_COLUMNS)}, "
            f"got {list(transactions.columns)}"
        )
    if transactions.empty:
        raise ValueError("transactions: the frame has no rows")
    for column in RAW_COLUMNS:
        nulls = transactions[column].isna().to_numpy()
        if nulls.any():
            raise ValueError(
                f"transactions: column {column!r} has {int(nulls.sum())} missing value(s), "
                f"first at row {_first_row(transactions, nulls)}"
            )
    for column in (EVENT_TIMESTAMP, LABEL_TIMESTAMP):
        dtype = transactions[column].dtype
        if not isinstance(dtype, pd.DatetimeTZDtype):
            raise ValueError(
                f"transactions: column {column!r} must hold timezone-aware UTC timestamps, "
                f"got dtype {dtype}"
            )
    if not pd.api.types.is_numeric_dtype(transactions[AMOUNT]):
        raise ValueError(
            f"transactions: column {AMOUNT!r} must be numeric, got {transactions[AMOUNT].dtype}"
        )
    amounts = transactions[AMOUNT].to_numpy(dtype="float64")
    bad_amount = ~np.isfinite(amounts) | (amounts <= 0)
    if bad_amount.any():
        raise ValueError(
            f"transactions: column {AMOUNT!r} must be finite and > 0, "
            f"got {float(amounts[bad_amount][0])!r} at row {_first_row(transactions, bad_amount)}"
        )
    bad_label = ~transactions[LABEL].isin([0, 1]).to_numpy()
    if bad_label.any():
        raise ValueError(
            f"transactions: column {LABEL!r} must be 0 or 1, got "
            f"{transactions[LABEL].to_numpy()[bad_label].tolist()[0]!r} at row "
            f"{_first_row(transactions, bad_label)}"
        )
    early = (transactions[LABEL_TIMESTAMP] < transactions[EVENT_TIMESTAMP]).to_numpy()
    if early.any():
        raise ValueError(
            f"transactions: {LABEL_TIMESTAMP!r} is before {EVENT_TIMESTAMP!r} in "
            f"{int(early.sum())} row(s), first at row {_first_row(transactions, early)}"
        )
    duplicated = transactions[TRANSACTION_ID].duplicated().to_numpy()
    if duplicated.any():
        raise ValueError(
            f"transactions: {TRANSACTION_ID!r} must be unique, "
            f"{transactions[TRANSACTION_ID].to_numpy()[duplicated][0]!r} appears more than once"
        )


def compute_feature_tables(
    transactions: pd.DataFrame, as_of: pd.Timestamp | None = None
) -> FeatureTables:
    """Compute the point-in-time customer and merchant feature tables.

    Args:
        transactions: Raw transactions (``kaizen.data.columns.RAW_COLUMNS``).
        as_of: The time up to which the data is complete. Defaults to the latest event or
            label timestamp in ``transactions``; rows after it are not written, and
            transactions or labels after it are ignored.

    Returns:
        The two tables, sorted by entity and timestamp.

    Raises:
        ValueError: if ``transactions`` is malformed (see ``validate_transactions``) or
            ``as_of`` is not a timezone-aware timestamp.
    """
    validate_transactions(transactions)
    return _compute_feature_tables(transactions, as_of)


def _compute_feature_tables(
    transactions: pd.DataFrame, as_of: pd.Timestamp | None = None
) -> FeatureTables:
    """:func:`compute_feature_tables` for transactions already validated."""
    event_ns = _utc_ns(transactions[EVENT_TIMESTAMP])
    label_ns = _utc_ns(transactions[LABEL_TIMESTAMP])
    if as_of is None:
        as_of_ts = pd.Timestamp(max(event_ns.max(), label_ns.max()), tz="UTC")
    else:
        as_of_ts = pd.Timestamp(as_of)
        if as_of_ts.tzinfo is None:
            raise ValueError(f"as_of must be timezone-aware (UTC), got {as_of!r}")
        as_of_ts = as_of_ts.tz_convert("UTC")
    as_of_ns = int(as_of_ts.value)
    happened = event_ns <= as_of_ns
    if not happened.any():
        raise ValueError(
            f"as_of {as_of_ts} is before the first transaction "
            f"({pd.Timestamp(event_ns.min(), tz='UTC')}); no feature row can be computed"
        )
    # The two tables share nothing: the merchants' in a thread beside the customers' (the
    # sorts and searches run outside the GIL, so two cores give about 1.6x).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="merchant-stats") as pool:
        merchant_stats = pool.submit(
            _merchant_stats,
            transactions[MERCHANT_ID].astype(str).to_numpy()[happened],
            event_ns[happened],
            label_ns[happened],
            transactions[LABEL].to_numpy(dtype="float64")[happened],
            as_of_ns,
        )
        customer_stats = _customer_stats(
            transactions[CUSTOMER_ID].astype(str).to_numpy()[happened],
            event_ns[happened],
            transactions[AMOUNT].to_numpy(dtype="float64")[happened],
            as_of_ns,
        )
    return FeatureTables(customer_stats, merchant_stats.result(), as_of_ts)


def write_feature_sources(
    tables: FeatureTables, data_dir: str | os.PathLike[str]
) -> dict[str, Path]:
    """Write the tables as the parquet files the feature repo's FileSources read.

    Each file is written to a temporary name in ``data_dir``; both are renamed over the old
    ones only when both were written, so a reader (or a crash) never sees half a file, and a
    failed write replaces neither.

    Args:
        tables: Output of ``compute_feature_tables``.
        data_dir: Directory of the sources, ``$KAIZEN_HOME/feast/data`` in the embedded default.

    Returns:
        Table name (``customer_stats``, ``merchant_stats``) to the written file.
    """
    directory = Path(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    targets: Mapping[str, tuple[pd.DataFrame, str]] = {
        "customer_stats": (tables.customer_stats, CUSTOMER_STATS_FILE),
        "merchant_stats": (tables.merchant_stats, MERCHANT_STATS_FILE),
    }
    # Both files at once (Arrow encodes and compresses outside the GIL), and both or neither:
    # each goes to a temporary name, renamed over its target only when both were written.
    with contextlib.ExitStack() as renames:
        temporary = {
            name: renames.enter_context(atomic_path(directory / file_name))
            for name, (_, file_name) in targets.items()
        }
        with ThreadPoolExecutor(max_workers=len(targets), thread_name_prefix="sources") as pool:
            futures = [
                pool.submit(frame.to_parquet, temporary[name], index=False)
                for name, (frame, _) in targets.items()
            ]
        for future in futures:
            future.result()
    return {name: directory / file_name for name, (_, file_name) in targets.items()}


def _customer_stats(
    customer: np.ndarray, event_ns: np.ndarray, amounts: np.ndarray, as_of_ns: int
) -> pd.DataFrame:
    codes, names = pd.factorize(customer, sort=True)
    final_ns = as_of_ns + FEATURE_AVAILABILITY_DELAY.value
    customers = np.arange(len(names))
    points = pd.DataFrame(
        {
            "code": np.concatenate([codes, customers]),
            "ns": np.concatenate([event_ns, np.full(len(names), final_ns, dtype="int64")]),
        }
    ).drop_duplicates()
    points = points.sort_values(["code", "ns"], kind="stable")
    point_code = points["code"].to_numpy()
    point_time = points["ns"].to_numpy()
    counter = _WindowCounter(codes, event_ns, amounts)
    columns: dict[str, np.ndarray] = {
        CUSTOMER_ID: np.asarray(names)[point_code],
        EVENT_TIMESTAMP: point_time,
    }
    windows = counter.in_windows(
        point_code, point_time, [window.value for window in CUSTOMER_WINDOWS.values()]
    )
    for name, (count, total) in zip(CUSTOMER_WINDOWS, windows, strict=True):
        columns[f"txn_count_{name}"] = count
        columns[f"txn_amount_sum_{name}"] = total
        columns[f"txn_amount_mean_{name}"] = np.divide(
            total, count, out=np.zeros_like(total), where=count > 0
        )
    return _frame(columns)


def _merchant_stats(
    merchant: np.ndarray,
    event_ns: np.ndarray,
    label_ns: np.ndarray,
    is_fraud: np.ndarray,
    as_of_ns: int,
) -> pd.DataFrame:
    codes, names = pd.factorize(merchant, sort=True)
    day_ns = pd.Timedelta(days=1).value
    merchants = np.arange(len(names))
    first_ns = pd.Series(event_ns).groupby(codes).min().to_numpy()
    # The daily snapshot at 00:00 UTC is written only where it is read: at the midnight
    # starting each day the merchant has a transaction (what those transactions join to)
    # and at the midnight starting the day of as_of (what the online store serves). Only
    # midnights after the merchant's first transaction; the first row covers the rest.
    event_midnights = event_ns - event_ns % day_ns
    last_midnight = as_of_ns - as_of_ns % day_ns
    code = np.concatenate([merchants, codes, merchants])
    ns = np.concatenate([first_ns, event_midnights, np.full(len(names), last_midnight)])
    keep = ns >= first_ns[code]
    points = pd.DataFrame({"code": code[keep], "ns": ns[keep]}).drop_duplicates()
    points = points.sort_values(["code", "ns"], kind="stable")
    point_code = points["code"].to_numpy()
    point_time = points["ns"].to_numpy()
    window = MERCHANT_WINDOW.value
    no_values = np.zeros(len(event_ns), dtype="float64")
    [(txn_count, _)] = _WindowCounter(codes, event_ns, no_values).in_windows(
        point_code, point_time, [window]
    )
    # Labels that arrive after as_of are unknown here, exactly as at any earlier time.
    known = label_ns <= as_of_ns
    [(label_count, fraud_count)] = _WindowCounter(
        codes[known], label_ns[known], is_fraud[known]
    ).in_windows(point_code, point_time, [window])
    fraud_rate = np.divide(
        fraud_count, label_count, out=np.zeros_like(fraud_count), where=label_count > 0
    )
    return _frame(
        {
            MERCHANT_ID: np.asarray(names)[point_code],
            EVENT_TIMESTAMP: point_time,
            f"txn_count_{MERCHANT_WINDOW_NAME}": txn_count,
            f"label_count_{MERCHANT_WINDOW_NAME}": label_count,
            f"fraud_rate_{MERCHANT_WINDOW_NAME}": fraud_rate,
        }
    )


class _WindowCounter:
    """Counts and sums of one entity's values in open time windows, by binary search.

    Values are sorted by (entity code, time); a time becomes its dense rank among all times
    seen, so (code, rank) packs into one sortable int64 key with no overflow. Sums are
    differences of prefix sums that restart at each entity, so their rounding error is that
    of one entity's values, not of the whole data's running total.
    """

    def __init__(self, codes: np.ndarray, times_ns: np.ndarray, values: np.ndarray) -> None:
        order = np.lexsort((times_ns, codes))
        self._codes = codes[order]
        self._times = times_ns[order]
        sorted_values = np.asarray(values, dtype="float64")[order]
        self._running = (
            pd.Series(sorted_values).groupby(self._codes, sort=False).cumsum().to_numpy()
        )

    def in_windows(
        self, codes: np.ndarray, ends_ns: np.ndarray, lengths_ns: Sequence[int]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Count and sum of values with ``end - length < time < end``, for each length.

        Args:
            codes: Entity code of each query, sorted with ``ends_ns`` by (code, end).
            ends_ns: End of each query's windows.
            lengths_ns: Window lengths; one ``(count, sum)`` pair of arrays per length.
        """
        starts = [ends_ns - length for length in lengths_ns]
        # Dense ranks of every time involved, from one sort (no search per array).
        times = np.concatenate([self._times, ends_ns, *starts])
        order = np.argsort(times)
        ordered = times[order]
        dense = np.empty(len(times), dtype="int64")
        dense[order] = np.cumsum(np.concatenate([[False], ordered[1:] != ordered[:-1]]))
        stride = np.int64(len(times) + 1)
        # Ranks of the stored times, of the ends, then of each window's starts.
        parts = np.split(dense, np.cumsum([len(self._times)] + [len(ends_ns)] * len(starts)))

        def keys(code: np.ndarray, rank: np.ndarray) -> np.ndarray:
            return code.astype("int64") * stride + rank

        sorted_keys = keys(self._codes, parts[0])
        before_end = np.searchsorted(sorted_keys, keys(codes, parts[1]), side="left")
        entity_first = np.searchsorted(self._codes, codes, side="left")
        last_inside = self._running[np.maximum(before_end - 1, 0)]
        answers = []
        for start_rank in parts[2:]:
            through_start = np.searchsorted(sorted_keys, keys(codes, start_rank), side="right")
            count = (before_end - through_start).astype("int64")
            before = np.where(
                through_start > entity_first,
                self._running[np.maximum(through_start - 1, 0)],
                0.0,
            )
            answers.append((count, np.where(count > 0, last_inside - before, 0.0)))
        return answers


def _frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    frame = pd.DataFrame(columns)
    frame[EVENT_TIMESTAMP] = pd.to_datetime(frame[EVENT_TIMESTAMP], unit="ns", utc=True)
    return frame.reset_index(drop=True)


def _utc_ns(column: pd.Series) -> np.ndarray:
    return column.dt.tz_convert("UTC").astype("datetime64[ns, UTC]").array.asi8.astype("int64")


def _first_row(frame: pd.DataFrame, mask: np.ndarray) -> str:
    position = int(np.flatnonzero(mask)[0])
    label = frame.index[position]
    if TRANSACTION_ID in frame.columns:
        return f"{label!r} ({TRANSACTION_ID}={frame[TRANSACTION_ID].iloc[position]!r})"
    return repr(label)
