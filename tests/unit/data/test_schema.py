"""Validation of raw transactions: every bad-data case names column, rows and values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

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
from kaizen.data.ingest import load_transactions
from kaizen.data.schema import DataValidationError, ValidationFailure, validate_transactions

CSV_HEADER = ",".join(RAW_COLUMNS)


def csv_rows(*rows: str) -> str:
    return "\n".join([CSV_HEADER, *rows]) + "\n"


GOOD_ROWS = (
    "t1,C0001,M001,12.50,2026-01-01T10:00:00Z,0,2026-01-01T12:00:00Z",
    "t2,C0002,M002,80.00,2026-01-01T09:00:00Z,1,2026-01-02T09:00:00Z",
    "t3,C0001,M001,7.25,2026-01-01T11:30:00Z,0,2026-01-01T11:30:00Z",
)


def load_csv(tmp_path: Path, text: str) -> tuple[pd.DataFrame, str]:
    path = tmp_path / "transactions.csv"
    path.write_text(text)
    return load_transactions(path), str(path)


def failure(error: DataValidationError, check: str, column: str | None) -> ValidationFailure:
    matches = [f for f in error.failures if f.check == check and f.column == column]
    assert len(matches) == 1, [(f.check, f.column) for f in error.failures]
    return matches[0]


def validate_csv(tmp_path: Path, text: str) -> DataValidationError:
    frame, source = load_csv(tmp_path, text)
    with pytest.raises(DataValidationError) as caught:
        validate_transactions(frame, source=source)
    return caught.value


def test_valid_csv_is_normalized_and_sorted(tmp_path: Path) -> None:
    frame, source = load_csv(tmp_path, csv_rows(*GOOD_ROWS))
    result = validate_transactions(frame, source=source)
    assert list(result[TRANSACTION_ID]) == ["t2", "t1", "t3"]  # sorted by event time
    assert result[AMOUNT].dtype == np.float64
    assert result[LABEL].dtype == np.int64
    assert str(result[EVENT_TIMESTAMP].dtype) == "datetime64[ns, UTC]"
    assert result.loc[0, EVENT_TIMESTAMP] == pd.Timestamp("2026-01-01T09:00:00Z")
    assert list(result[LABEL]) == [1, 0, 0]


def test_offsets_are_converted_and_all_naive_values_taken_as_utc(tmp_path: Path) -> None:
    offsets = csv_rows(
        "t1,C1,M1,10,2026-01-01T12:00:00+02:00,0,2026-01-01T13:00:00+02:00",
        "t2,C1,M1,10,2026-01-01T10:30:00Z,0,2026-01-01T11:00:00Z",
    )
    frame, source = load_csv(tmp_path, offsets)
    result = validate_transactions(frame, source=source)
    assert list(result[EVENT_TIMESTAMP]) == [
        pd.Timestamp("2026-01-01T10:00:00Z"),
        pd.Timestamp("2026-01-01T10:30:00Z"),
    ]
    naive = csv_rows("t1,C1,M1,10,2026-01-01 10:00:00,0,2026-01-01 11:00:00")
    frame, source = load_csv(tmp_path, naive)
    result = validate_transactions(frame, source=source)
    assert result.loc[0, EVENT_TIMESTAMP] == pd.Timestamp("2026-01-01T10:00:00Z")


def test_missing_column_is_named_with_the_columns_found(tmp_path: Path) -> None:
    header = "transaction_id,customer_id,amount,event_timestamp,is_fraud,label_timestamp"
    text = header + "\nt1,C1,10.0,2026-01-01T10:00:00Z,0,2026-01-01T11:00:00Z\n"
    error = validate_csv(tmp_path, text)
    missing = failure(error, "missing_columns", MERCHANT_ID)
    assert "missing required column(s): merchant_id" in missing.message
    assert (
        "columns found: transaction_id, customer_id, amount, event_timestamp, is_fraud, "
        "label_timestamp" in str(error)
    )


def test_wrong_type_names_column_row_value_and_expected_type(tmp_path: Path) -> None:
    error = validate_csv(
        tmp_path,
        csv_rows(GOOD_ROWS[0], "t2,C0002,M002,abc,2026-01-01T09:00:00Z,1,2026-01-02T09:00:00Z"),
    )
    bad = failure(error, "is_number", AMOUNT)
    assert bad.failing_rows == 1
    assert [(ex.row, ex.value) for ex in bad.examples] == [(2, "'abc'")]
    report = str(error)
    assert "is_number [amount]: 1 row with a value that is not a number; expected a float" in report
    assert "row 2: 'abc'" in report
    assert "not counting the CSV header line" in report


def test_null_customer_id_is_reported_with_its_rows(tmp_path: Path) -> None:
    error = validate_csv(
        tmp_path,
        csv_rows(
            GOOD_ROWS[0],
            "t2,,M002,80.00,2026-01-01T09:00:00Z,1,2026-01-02T09:00:00Z",
            "t3,,M001,7.25,2026-01-01T11:30:00Z,0,2026-01-01T11:30:00Z",
        ),
    )
    nulls = failure(error, "not_null", CUSTOMER_ID)
    assert nulls.failing_rows == 2
    assert [ex.row for ex in nulls.examples] == [2, 3]
    assert "not_null [customer_id]: 2 rows with a null value" in str(error)


@pytest.mark.parametrize("label", ["2", "-1", "yes"])
def test_label_outside_0_1_is_refused(tmp_path: Path, label: str) -> None:
    error = validate_csv(
        tmp_path,
        csv_rows(GOOD_ROWS[0], f"t2,C2,M2,5.0,2026-01-01T09:00:00Z,{label},2026-01-02T09:00:00Z"),
    )
    bad = failure(error, "label_is_0_or_1", LABEL)
    assert [(ex.row, ex.value) for ex in bad.examples] == [(2, repr(label))]
    assert "label that is not 0 or 1" in str(error)


def test_boolean_and_string_labels_are_accepted() -> None:
    frame = pd.DataFrame(
        {
            TRANSACTION_ID: ["a", "b", "c", "d"],
            CUSTOMER_ID: ["C1"] * 4,
            MERCHANT_ID: ["M1"] * 4,
            AMOUNT: [1.0, 2.0, 3.0, 4.0],
            EVENT_TIMESTAMP: pd.date_range("2026-01-01", periods=4, freq="h", tz="UTC"),
            LABEL: [True, False, "1", "0"],
            LABEL_TIMESTAMP: pd.date_range("2026-01-02", periods=4, freq="h", tz="UTC"),
        }
    )
    assert list(validate_transactions(frame)[LABEL]) == [1, 0, 1, 0]
    as_bool = frame.assign(**{LABEL: [True, False, True, True]})
    assert validate_transactions(as_bool)[LABEL].dtype == np.int64


def test_duplicate_ids_are_shown(tmp_path: Path) -> None:
    error = validate_csv(
        tmp_path,
        csv_rows(
            GOOD_ROWS[0],
            "t1,C0002,M002,80.00,2026-01-01T09:00:00Z,1,2026-01-02T09:00:00Z",
            GOOD_ROWS[2],
        ),
    )
    dup = failure(error, "unique", TRANSACTION_ID)
    assert dup.failing_rows == 2
    assert [(ex.row, ex.value) for ex in dup.examples] == [(1, "'t1'"), (2, "'t1'")]
    assert "share 1 duplicated transaction_id value(s) ('t1')" in str(error)


def test_amount_must_be_positive_and_finite(tmp_path: Path) -> None:
    error = validate_csv(
        tmp_path,
        csv_rows(
            "t1,C1,M1,0,2026-01-01T10:00:00Z,0,2026-01-01T12:00:00Z",
            "t2,C1,M1,-3.5,2026-01-01T10:00:00Z,0,2026-01-01T12:00:00Z",
            "t3,C1,M1,inf,2026-01-01T10:00:00Z,0,2026-01-01T12:00:00Z",
            "t4,C1,M1,4.5,2026-01-01T10:00:00Z,0,2026-01-01T12:00:00Z",
        ),
    )
    bad = failure(error, "positive_finite", AMOUNT)
    assert [(ex.row, ex.value) for ex in bad.examples] == [(1, "'0'"), (2, "'-3.5'"), (3, "'inf'")]


def test_unparseable_timestamp_is_named(tmp_path: Path) -> None:
    error = validate_csv(
        tmp_path,
        csv_rows(GOOD_ROWS[0], "t2,C2,M2,5.0,next tuesday,0,2026-01-02T09:00:00Z"),
    )
    bad = failure(error, "timestamp_parseable", EVENT_TIMESTAMP)
    assert [(ex.row, ex.value) for ex in bad.examples] == [(2, "'next tuesday'")]
    assert "expected ISO 8601 such as 2026-01-01T10:00:00Z" in str(error)


def test_mixed_aware_and_naive_timestamps_are_an_error(tmp_path: Path) -> None:
    error = validate_csv(
        tmp_path,
        csv_rows(
            GOOD_ROWS[0],
            "t2,C2,M2,5.0,2026-01-01T09:00:00,0,2026-01-02T09:00:00Z",
            GOOD_ROWS[2],
        ),
    )
    mixed = failure(error, "timezone_consistent", EVENT_TIMESTAMP)
    assert mixed.failing_rows == 1
    assert [(ex.row, ex.value) for ex in mixed.examples] == [(2, "'2026-01-01T09:00:00'")]
    assert "mixes timezone-aware (2 rows) and naive (1 row) timestamps" in mixed.message
    assert "the examples are the naive values" in mixed.message


def test_label_before_event_is_refused() -> None:
    frame = pd.DataFrame(
        {
            TRANSACTION_ID: ["a", "b"],
            CUSTOMER_ID: ["C1", "C2"],
            MERCHANT_ID: ["M1", "M2"],
            AMOUNT: [1.0, 2.0],
            EVENT_TIMESTAMP: pd.to_datetime(["2026-01-02", "2026-01-02"], utc=True),
            LABEL: [0, 1],
            LABEL_TIMESTAMP: pd.to_datetime(["2026-01-03", "2026-01-01"], utc=True),
        }
    )
    with pytest.raises(DataValidationError) as caught:
        validate_transactions(frame, source="frame from test")
    bad = failure(caught.value, "label_after_event", None)
    assert bad.examples[0].row == 2
    assert "label_timestamp=2026-01-01 00:00:00+00:00" in bad.examples[0].value
    assert str(caught.value).startswith("Invalid transactions in frame from test: 1 failing check")


def test_every_failure_is_reported_together(tmp_path: Path) -> None:
    header = "transaction_id,customer_id,amount,event_timestamp,is_fraud,label_timestamp"
    text = "\n".join(
        [
            header,
            "t1,C1,12.5,2026-01-01T10:00:00Z,0,2026-01-01T12:00:00Z",
            "t1,,abc,2026-01-01T11:00:00Z,yes,2026-01-01T12:00:00Z",
            "t3,C3,-1,2026-01-01T12:00:00,1,2026-01-01T13:00:00Z",
        ]
    )
    error = validate_csv(tmp_path, text + "\n")
    found = [(f.check, f.column) for f in error.failures]
    assert found == [
        ("missing_columns", MERCHANT_ID),
        ("unique", TRANSACTION_ID),
        ("not_null", CUSTOMER_ID),
        ("is_number", AMOUNT),
        ("positive_finite", AMOUNT),
        ("timezone_consistent", EVENT_TIMESTAMP),
        ("label_is_0_or_1", LABEL),
    ]
    report = str(error)
    assert report.startswith(f"Invalid transactions in {tmp_path / 'transactions.csv'}: 7 failing")
    for number, (check, _) in enumerate(found, 1):
        assert f"  {number}. {check}" in report


def test_examples_are_capped_with_a_count_of_the_rest() -> None:
    frame = pd.DataFrame(
        {
            TRANSACTION_ID: [f"t{i}" for i in range(8)],
            CUSTOMER_ID: ["C1"] * 8,
            MERCHANT_ID: ["M1"] * 8,
            AMOUNT: ["x"] * 8,
            EVENT_TIMESTAMP: ["2026-01-01T10:00:00Z"] * 8,
            LABEL: ["0"] * 8,
            LABEL_TIMESTAMP: ["2026-01-01T10:00:00Z"] * 8,
        }
    )
    with pytest.raises(DataValidationError) as caught:
        validate_transactions(frame)
    bad = failure(caught.value, "is_number", AMOUNT)
    assert bad.failing_rows == 8
    assert len(bad.examples) == 5
    assert "(and 3 more)" in str(caught.value)


def test_empty_frame_and_duplicate_column_names_are_refused() -> None:
    empty = pd.DataFrame(columns=list(RAW_COLUMNS))
    with pytest.raises(DataValidationError, match="the data has no rows"):
        validate_transactions(empty)
    doubled = pd.DataFrame([[1, 2]], columns=[AMOUNT, AMOUNT])
    with pytest.raises(DataValidationError, match="appear more than once: amount"):
        validate_transactions(doubled)


def test_typed_frame_is_normalized_to_the_contract() -> None:
    frame = pd.DataFrame(
        {
            TRANSACTION_ID: [101, 102],
            CUSTOMER_ID: [7, 8],
            MERCHANT_ID: ["M1", "M2"],
            AMOUNT: [5, 6],
            # Naive datetimes are taken as UTC; other zones are converted to UTC.
            EVENT_TIMESTAMP: pd.to_datetime(["2026-01-01 10:00", "2026-01-01 09:00"]),
            LABEL: [1.0, 0.0],
            LABEL_TIMESTAMP: pd.to_datetime(["2026-01-01 12:00", "2026-01-01 11:00"]).tz_localize(
                "Europe/Berlin"
            ),
            "note": ["extra columns are dropped", "x"],
        }
    )
    result = validate_transactions(frame)
    assert tuple(result.columns) == RAW_COLUMNS
    assert list(result[TRANSACTION_ID]) == ["102", "101"]
    assert list(result[CUSTOMER_ID]) == ["8", "7"]
    assert list(result[AMOUNT]) == [6.0, 5.0]
    assert list(result[LABEL]) == [0, 1]
    assert list(result[EVENT_TIMESTAMP]) == [
        pd.Timestamp("2026-01-01T09:00Z"),
        pd.Timestamp("2026-01-01T10:00Z"),
    ]
    assert result.loc[1, LABEL_TIMESTAMP] == pd.Timestamp("2026-01-01T11:00Z")


def test_an_event_in_the_future_is_refused_naming_its_file_and_rows(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    later = "t4,C0003,M003,19.99,2031-06-01T10:00:00Z,0,2031-06-02T10:00:00Z"
    just_inside = "t5,C0003,M003,5.00,2026-03-01T12:30:00+01:00,0,2026-03-01T13:00:00Z"
    frame, source = load_csv(tmp_path, csv_rows(*GOOD_ROWS, later, just_inside))
    with pytest.raises(DataValidationError) as caught:
        # 11:30 UTC: t5 (11:30 UTC) is within the tolerance, t4 is five years ahead
        validate_transactions(frame, source=source, now=datetime(2026, 3, 1, 11, 30, tzinfo=UTC))
    bad = failure(caught.value, "not_in_future", EVENT_TIMESTAMP)
    assert bad.failing_rows == 1
    assert [example.row for example in bad.examples] == [4]
    assert "'2031-06-01T10:00:00Z'" in bad.examples[0].value
    assert "after 2026-03-01T12:30:00+00:00 (now plus 1 h)" in bad.message
    assert str(tmp_path / "transactions.csv") in str(caught.value)

    # the same file, checked against the real clock: 2031 is still ahead
    with pytest.raises(DataValidationError, match="not_in_future"):
        validate_transactions(frame.drop(index=4), source=source)
