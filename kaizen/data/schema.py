"""Validation and normalization of raw transactions, with a pandera schema.

``validate_transactions`` checks a raw frame (generated, or read from a user's CSV or
Parquet file with every CSV cell still a string) and returns it normalized to the
dtypes of ``kaizen.data.columns``. All checks run lazily, so one error lists every
problem in the data at once, each with the column, the number of failing rows and a few
example rows with their values.

Timestamps are ISO 8601 values such as ``2026-01-01T10:00:00Z``. Values with an offset
are converted to UTC; naive values (no offset) are taken as UTC. A column must be
consistent: all values with an offset or all without; a mix is an error, because the
naive values' meaning would be a guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

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

MAX_EXAMPLES = 5

ID_COLUMNS: tuple[str, ...] = (TRANSACTION_ID, CUSTOMER_ID, MERCHANT_ID)
TIMESTAMP_COLUMNS: tuple[str, ...] = (EVENT_TIMESTAMP, LABEL_TIMESTAMP)

# Check names, as they appear in ``ValidationFailure.check`` and in error reports.
CHECK_MISSING_COLUMNS = "missing_columns"
CHECK_DUPLICATE_COLUMNS = "duplicate_columns"
CHECK_NO_ROWS = "no_rows"
CHECK_NOT_NULL = "not_null"
CHECK_NOT_BLANK = "not_blank"
CHECK_UNIQUE = "unique"
CHECK_IS_NUMBER = "is_number"
CHECK_POSITIVE_FINITE = "positive_finite"
CHECK_TIMESTAMP_PARSEABLE = "timestamp_parseable"
CHECK_TIMEZONE_CONSISTENT = "timezone_consistent"
CHECK_LABEL_BINARY = "label_is_0_or_1"
CHECK_LABEL_AFTER_EVENT = "label_after_event"
CHECK_NOT_IN_FUTURE = "not_in_future"
#: How far past "now" an event may lie before it is refused: clocks of the systems that
#: recorded the data and of this machine may differ, a transaction cannot be years ahead.
FUTURE_TOLERANCE = pd.Timedelta(hours=1)

# pandera's names for its built-in checks, mapped to ours.
_PANDERA_CHECK_NAMES = {
    "column_in_dataframe": CHECK_MISSING_COLUMNS,
    "not_nullable": CHECK_NOT_NULL,
    "field_uniqueness": CHECK_UNIQUE,
}
_CHECK_ORDER = (
    CHECK_NOT_NULL,
    CHECK_NOT_BLANK,
    CHECK_UNIQUE,
    CHECK_IS_NUMBER,
    CHECK_POSITIVE_FINITE,
    CHECK_TIMESTAMP_PARSEABLE,
    CHECK_TIMEZONE_CONSISTENT,
    CHECK_NOT_IN_FUTURE,
    CHECK_LABEL_BINARY,
    CHECK_LABEL_AFTER_EVENT,
)

# An offset or "Z" right after a time of day: "10:00Z", "10:00:00.5+02:00", "10:00 -0500".
_TZ_SUFFIX = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$")
_LABEL_STRINGS = {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1}


@dataclass(frozen=True)
class FailureExample:
    """One failing row: its 1-based data row number and the offending value(s)."""

    row: int
    value: str


@dataclass(frozen=True)
class ValidationFailure:
    """One failing check.

    Attributes:
        check: Check name, e.g. ``"is_number"`` or ``"missing_columns"``.
        column: The column checked, or None for frame-wide checks; for
            ``missing_columns`` the missing names, comma-separated.
        message: What is wrong and what was expected, in words.
        failing_rows: Number of rows that fail the check (0 for frame-wide checks).
        examples: Up to ``MAX_EXAMPLES`` failing rows with their values.
    """

    check: str
    column: str | None
    message: str
    failing_rows: int
    examples: tuple[FailureExample, ...] = ()

    def describe(self) -> str:
        """A one-paragraph description: check, column, message and example rows."""
        where = f" [{self.column}]" if self.column and self.check != CHECK_MISSING_COLUMNS else ""
        text = f"{self.check}{where}: {self.message}"
        if self.examples:
            shown = "; ".join(f"row {ex.row}: {ex.value}" for ex in self.examples)
            more = self.failing_rows - len(self.examples)
            text += f"\n    examples: {shown}" + (f" (and {more} more)" if more > 0 else "")
        return text


class DataValidationError(ValueError):
    """Transactions failed validation; ``failures`` lists every failing check.

    Attributes:
        source: Where the data came from (a path or a description).
        failures: One entry per failing check, in a stable order.
    """

    def __init__(self, source: str, failures: list[ValidationFailure], row_note: str) -> None:
        self.source = source
        self.failures = failures
        self.row_note = row_note
        super().__init__(self._report())

    def _report(self) -> str:
        n = len(self.failures)
        lines = [
            f"Invalid transactions in {self.source}: {n} failing check{'s' if n != 1 else ''} "
            f"({self.row_note})."
        ]
        lines.extend(f"  {i}. {failure.describe()}" for i, failure in enumerate(self.failures, 1))
        return "\n".join(lines)


def validate_transactions(
    df: pd.DataFrame, source: str = "<dataframe>", *, now: datetime | None = None
) -> pd.DataFrame:
    """Validate raw transactions and return them normalized.

    Every check runs, so the error lists all problems at once. Columns other than
    ``RAW_COLUMNS`` are dropped from the result.

    Args:
        df: Raw transactions: generated, or as read from a user's file (CSV cells may
            still be strings). Its index is ignored; rows are numbered from 1 in order.
        source: Where the data came from, used in the error report. A source ending in
            ``.csv`` makes the report say that row numbers exclude the header line.
        now: The present, for refusing events later than it plus ``FUTURE_TOLERANCE``
            (default: the current time).

    Returns:
        A new frame with exactly ``RAW_COLUMNS``: ids as ``str``, ``amount`` float64,
        timestamps ``datetime64[ns, UTC]`` (naive values taken as UTC), ``is_fraud``
        int64 (``True``/``False`` and ``"0"``/``"1"`` accepted), sorted by
        ``event_timestamp`` (stable, so ties keep their input order) with a fresh
        ``RangeIndex``.

    Raises:
        DataValidationError: If any check fails; ``.failures`` holds one structured
            entry per failing check and ``str()`` is a readable report of all of them.
        TypeError: If ``df`` is not a pandas DataFrame.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
    row_note = _row_note(source)
    frame = df.reset_index(drop=True)

    duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if duplicated:
        raise DataValidationError(
            source,
            [
                ValidationFailure(
                    CHECK_DUPLICATE_COLUMNS,
                    None,
                    f"column name(s) appear more than once: {', '.join(duplicated)}",
                    0,
                )
            ],
            row_note,
        )
    if frame.empty:
        raise DataValidationError(
            source,
            [ValidationFailure(CHECK_NO_ROWS, None, "the data has no rows", 0)],
            row_note,
        )

    present = pd.Timestamp(now if now is not None else datetime.now(UTC))
    latest = (present.tz_localize("UTC") if present.tzinfo is None else present) + FUTURE_TOLERANCE
    try:
        _build_schema(latest).validate(frame, lazy=True)
    except SchemaErrors as exc:
        raise DataValidationError(
            source, _collect_failures(exc.failure_cases, frame, latest), row_note
        ) from None
    return _normalize(frame)


def _row_note(source: str) -> str:
    if source.lower().endswith((".csv", ".csv.gz")):
        return "row numbers are data rows counted from 1, not counting the CSV header line"
    return "row numbers count data rows from 1"


# --- parsing helpers: each returns the parsed value or a missing value where it fails ---


def parse_amount(series: pd.Series) -> pd.Series:
    """Parse amounts to float64; values that are not numbers become NaN."""
    if pd.api.types.is_bool_dtype(series):
        return pd.Series(np.nan, index=series.index, dtype="float64")
    if pd.api.types.is_numeric_dtype(series):
        return series.astype("float64")
    as_text = series.map(lambda v: v.strip() if isinstance(v, str) else v)
    parsed = pd.to_numeric(as_text, errors="coerce")
    # Python bools inside an object column are not amounts.
    is_bool = series.map(lambda v: isinstance(v, bool | np.bool_))
    return parsed.where(~is_bool).astype("float64")


def parse_timestamps(series: pd.Series) -> pd.Series:
    """Parse timestamps to ``datetime64[ns, UTC]``; unparseable values become NaT.

    Values with an offset are converted to UTC; naive values are taken as UTC.
    """
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    if pd.api.types.is_datetime64_dtype(series):
        return series.dt.tz_localize("UTC").astype("datetime64[ns, UTC]")
    if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
        # Numbers are not accepted as timestamps: seconds or milliseconds would be a guess.
        return pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns, UTC]")
    non_null = series.dropna()
    if non_null.map(lambda v: isinstance(v, str)).all():
        parsed = pd.to_datetime(series.str.strip(), format="ISO8601", utc=True, errors="coerce")
        return parsed.astype("datetime64[ns, UTC]")
    return series.map(_parse_one_timestamp).astype("datetime64[ns, UTC]")


def _parse_one_timestamp(value: Any) -> pd.Timestamp:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return pd.NaT
    if isinstance(value, str):
        parsed = pd.to_datetime(
            pd.Series([value.strip()]), format="ISO8601", utc=True, errors="coerce"
        )
        return parsed.iloc[0]
    if isinstance(value, datetime | date | np.datetime64):
        ts = pd.Timestamp(value)
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return pd.NaT


def timestamp_awareness(series: pd.Series) -> pd.Series:
    """Per value: True if it carries a timezone, False if naive, NA if null.

    Unparseable strings are classified by their text (they fail parsing separately).
    """
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return pd.Series(True, index=series.index, dtype="boolean")
    if pd.api.types.is_datetime64_dtype(series):
        return pd.Series(False, index=series.index, dtype="boolean")

    def aware(value: Any) -> bool | None:
        if isinstance(value, str):
            return bool(_TZ_SUFFIX.search(value.strip()))
        if isinstance(value, datetime):
            return value.tzinfo is not None
        return None

    return series.map(aware).astype("boolean")


def parse_label(series: pd.Series) -> pd.Series:
    """Parse labels to 0.0/1.0; anything but 0/1, booleans or "0"/"1"/"true"/"false" is NaN."""
    if pd.api.types.is_bool_dtype(series):
        return series.astype("float64")
    if pd.api.types.is_numeric_dtype(series):
        values = series.astype("float64")
        return values.where(values.isin([0.0, 1.0]))
    return series.map(_parse_one_label).astype("float64")


def _parse_one_label(value: Any) -> float:
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value) if value in (0, 1) else np.nan
    if isinstance(value, str):
        parsed = _LABEL_STRINGS.get(value.strip().lower())
        return float(parsed) if parsed is not None else np.nan
    return np.nan


# --- pandera checks: each returns True where a row passes (nulls are dropped by pandera) ---


def _not_blank(series: pd.Series) -> pd.Series:
    return series.map(lambda v: not (isinstance(v, str) and not v.strip()))


def _is_number(series: pd.Series) -> pd.Series:
    return parse_amount(series).notna()


def _positive_finite(series: pd.Series) -> pd.Series:
    parsed = parse_amount(series)
    # Values that are not numbers at all are reported by the is_number check.
    return parsed.isna() | (np.isfinite(parsed) & (parsed > 0))


def _timestamp_parseable(series: pd.Series) -> pd.Series:
    return parse_timestamps(series).notna()


def _timezone_consistent(series: pd.Series) -> pd.Series:
    awareness = timestamp_awareness(series)
    n_aware = int((awareness == True).sum())  # noqa: E712 - nullable boolean comparison
    n_naive = int((awareness == False).sum())  # noqa: E712
    if n_aware == 0 or n_naive == 0:
        return pd.Series(True, index=series.index)
    # Flag the minority, which is what the user most likely has to fix.
    minority_is_aware = n_naive > n_aware
    return (awareness != minority_is_aware).fillna(True).astype(bool)


def _label_binary(series: pd.Series) -> pd.Series:
    return parse_label(series).notna()


def _label_after_event(frame: pd.DataFrame) -> pd.Series:
    if EVENT_TIMESTAMP not in frame.columns or LABEL_TIMESTAMP not in frame.columns:
        return pd.Series(True, index=frame.index)
    event = parse_timestamps(frame[EVENT_TIMESTAMP])
    label = parse_timestamps(frame[LABEL_TIMESTAMP])
    return event.isna() | label.isna() | (label >= event)


def _not_after(latest: pd.Timestamp) -> Callable[[pd.Series], pd.Series]:
    def check(series: pd.Series) -> pd.Series:
        parsed = parse_timestamps(series)
        # Values that are not timestamps are reported by the timestamp_parseable check.
        return parsed.isna() | (parsed <= latest)

    return check


def _check(fn: Callable[[pd.Series], pd.Series], name: str) -> pa.Check:
    return pa.Check(fn, name=name)


def _build_schema(latest_event: pd.Timestamp) -> pa.DataFrameSchema:
    id_checks = [_check(_not_blank, CHECK_NOT_BLANK)]
    timestamp_checks = [
        _check(_timestamp_parseable, CHECK_TIMESTAMP_PARSEABLE),
        _check(_timezone_consistent, CHECK_TIMEZONE_CONSISTENT),
    ]
    event_checks = [*timestamp_checks, _check(_not_after(latest_event), CHECK_NOT_IN_FUTURE)]
    return pa.DataFrameSchema(
        {
            TRANSACTION_ID: pa.Column(None, nullable=False, unique=True, checks=id_checks),
            CUSTOMER_ID: pa.Column(None, nullable=False, checks=id_checks),
            MERCHANT_ID: pa.Column(None, nullable=False, checks=id_checks),
            AMOUNT: pa.Column(
                None,
                nullable=False,
                checks=[
                    _check(_is_number, CHECK_IS_NUMBER),
                    _check(_positive_finite, CHECK_POSITIVE_FINITE),
                ],
            ),
            EVENT_TIMESTAMP: pa.Column(None, nullable=False, checks=event_checks),
            LABEL: pa.Column(
                None, nullable=False, checks=[_check(_label_binary, CHECK_LABEL_BINARY)]
            ),
            LABEL_TIMESTAMP: pa.Column(None, nullable=False, checks=timestamp_checks),
        },
        checks=[pa.Check(_label_after_event, name=CHECK_LABEL_AFTER_EVENT)],
        strict=False,
        coerce=False,
    )


# --- turning pandera's failure cases into a report ---


def _format_value(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "<null>"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _collect_failures(
    cases: pd.DataFrame, frame: pd.DataFrame, latest_event: pd.Timestamp
) -> list[ValidationFailure]:
    cases = cases.copy()
    cases["check"] = cases["check"].map(lambda c: _PANDERA_CHECK_NAMES.get(str(c), str(c)))
    failures: list[ValidationFailure] = []

    missing_cases = cases[cases["check"] == CHECK_MISSING_COLUMNS]
    if not missing_cases.empty:
        missing = [c for c in RAW_COLUMNS if c in set(missing_cases["failure_case"].astype(str))]
        found = ", ".join(str(c) for c in frame.columns) or "(none)"
        failures.append(
            ValidationFailure(
                CHECK_MISSING_COLUMNS,
                ", ".join(missing),
                f"missing required column(s): {', '.join(missing)}; columns found: {found}",
                0,
            )
        )

    row_cases = cases[cases["check"] != CHECK_MISSING_COLUMNS]
    # Frame-wide checks are reported once, not once per column they looked at.
    frame_wide = row_cases["check"] == CHECK_LABEL_AFTER_EVENT
    row_cases = row_cases.assign(column=row_cases["column"].where(~frame_wide, None))
    groups = row_cases.groupby(["check", "column"], dropna=False, sort=False)
    for (check, column), group in groups:
        column_name = None if pd.isna(column) else str(column)
        failures.append(_row_failure(str(check), column_name, group, frame, latest_event))

    def order(failure: ValidationFailure) -> tuple[int, int, int]:
        if failure.check == CHECK_MISSING_COLUMNS:
            return (0, 0, 0)
        column_rank = (
            RAW_COLUMNS.index(failure.column) if failure.column in RAW_COLUMNS else len(RAW_COLUMNS)
        )
        check_rank = (
            _CHECK_ORDER.index(failure.check)
            if failure.check in _CHECK_ORDER
            else len(_CHECK_ORDER)
        )
        return (1, column_rank, check_rank)

    return sorted(failures, key=order)


def _row_failure(
    check: str,
    column: str | None,
    group: pd.DataFrame,
    frame: pd.DataFrame,
    latest_event: pd.Timestamp,
) -> ValidationFailure:
    indices = sorted({int(i) for i in group["index"].dropna()})
    n = len(indices)
    if not indices:
        # A check that could not run reports its error text instead of rows.
        detail = "; ".join(str(v) for v in group["failure_case"].unique()[:MAX_EXAMPLES])
        return ValidationFailure(check, column, f"check could not run: {detail}", 0)
    shown = indices[:MAX_EXAMPLES]
    if check == CHECK_LABEL_AFTER_EVENT:
        examples = tuple(
            FailureExample(
                i + 1,
                f"{EVENT_TIMESTAMP}={_format_value(frame.at[i, EVENT_TIMESTAMP])}, "
                f"{LABEL_TIMESTAMP}={_format_value(frame.at[i, LABEL_TIMESTAMP])}",
            )
            for i in shown
        )
    else:
        assert column is not None
        examples = tuple(FailureExample(i + 1, _format_value(frame.at[i, column])) for i in shown)
    return ValidationFailure(
        check, column, _message(check, column, n, frame, latest_event), n, examples
    )


def _rows(n: int) -> str:
    return f"{n} row{'s' if n != 1 else ''}"


def _message(
    check: str, column: str | None, n: int, frame: pd.DataFrame, latest_event: pd.Timestamp
) -> str:
    rows = _rows(n)
    if check == CHECK_NOT_NULL:
        return f"{rows} with a null value; {column} is required in every row"
    if check == CHECK_NOT_BLANK:
        return f"{rows} with a blank value; {column} must be a non-empty id"
    if check == CHECK_UNIQUE and column is not None:
        values = frame.loc[frame[column].duplicated(keep=False), column]
        ids = ", ".join(_format_value(v) for v in values.drop_duplicates().head(MAX_EXAMPLES))
        return (
            f"{rows} share {values.nunique()} duplicated {column} value(s) ({ids}); "
            f"{column} must be unique"
        )
    if check == CHECK_IS_NUMBER:
        return f"{rows} with a value that is not a number; expected a float such as 12.5"
    if check == CHECK_POSITIVE_FINITE:
        return f"{rows} with a value that is zero, negative or not finite; expected > 0"
    if check == CHECK_TIMESTAMP_PARSEABLE:
        return (
            f"{rows} with a value that is not a timestamp; expected ISO 8601 such as "
            "2026-01-01T10:00:00Z"
        )
    if check == CHECK_TIMEZONE_CONSISTENT and column is not None:
        awareness = timestamp_awareness(frame[column])
        n_aware = int((awareness == True).sum())  # noqa: E712 - nullable boolean comparison
        n_naive = int((awareness == False).sum())  # noqa: E712
        minority = "naive" if n_naive <= n_aware else "timezone-aware"
        return (
            f"mixes timezone-aware ({_rows(n_aware)}) and naive ({_rows(n_naive)}) timestamps; "
            "use one form for the whole column (naive values are taken as UTC); "
            f"the examples are the {minority} values"
        )
    if check == CHECK_NOT_IN_FUTURE:
        hours = FUTURE_TOLERANCE / pd.Timedelta(hours=1)
        return (
            f"{rows} with an event after {latest_event.isoformat()} (now plus {hours:g} h); "
            "a transaction cannot happen in the future: check the year and the time zone"
        )
    if check == CHECK_LABEL_BINARY:
        return f"{rows} with a label that is not 0 or 1; expected 0/1 (or true/false)"
    if check == CHECK_LABEL_AFTER_EVENT:
        return (
            f"{rows} where {LABEL_TIMESTAMP} is before {EVENT_TIMESTAMP} (compared in UTC); "
            "a label cannot be known before its transaction happened"
        )
    return f"{rows} fail this check"


def _normalize(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for column in ID_COLUMNS:
        out[column] = frame[column].map(str).astype(object)
    out[AMOUNT] = parse_amount(frame[AMOUNT])
    for column in TIMESTAMP_COLUMNS:
        out[column] = parse_timestamps(frame[column])
    out[LABEL] = parse_label(frame[LABEL]).astype("int64")
    out = out[list(RAW_COLUMNS)]
    return out.sort_values(EVENT_TIMESTAMP, kind="stable").reset_index(drop=True)
