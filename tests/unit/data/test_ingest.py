"""Loading a user's CSV/Parquet file, the errors for unusable sources, and ``ingest``."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from kaizen.data.columns import EVENT_TIMESTAMP, LABEL_TIMESTAMP, RAW_COLUMNS
from kaizen.data.generator import GeneratorConfig, generate_transactions
from kaizen.data.ingest import DataSourceError, IngestResult, ingest, load_transactions
from kaizen.data.schema import DataValidationError, validate_transactions

NOBODY = 65534  # the conventional unprivileged uid/gid


@pytest.fixture(scope="module")
def generated() -> pd.DataFrame:
    return generate_transactions(GeneratorConfig(rows=1_000, customers=50, merchants=10, days=5))


def test_csv_round_trip_equals_the_original(tmp_path: Path, generated: pd.DataFrame) -> None:
    path = tmp_path / "transactions.csv"
    generated.to_csv(path, index=False)
    loaded = validate_transactions(load_transactions(path), source=str(path))
    pd.testing.assert_frame_equal(loaded, generated)


def test_parquet_round_trip_equals_the_original(tmp_path: Path, generated: pd.DataFrame) -> None:
    path = tmp_path / "transactions.parquet"
    generated.to_parquet(path, index=False)
    loaded = validate_transactions(load_transactions(path), source=str(path))
    pd.testing.assert_frame_equal(loaded, generated)


def test_file_uri_is_accepted(tmp_path: Path, generated: pd.DataFrame) -> None:
    path = tmp_path / "with space.parquet"
    generated.to_parquet(path, index=False)
    loaded = load_transactions(path.as_uri())  # file:///.../with%20space.parquet
    assert len(loaded) == len(generated)


def test_missing_label_timestamp_means_label_known_at_event_time(
    tmp_path: Path, generated: pd.DataFrame
) -> None:
    path = tmp_path / "no_label_time.csv"
    generated.drop(columns=[LABEL_TIMESTAMP]).to_csv(path, index=False)
    result = ingest(str(path), GeneratorConfig())
    assert tuple(result.frame.columns) == RAW_COLUMNS
    assert result.frame[LABEL_TIMESTAMP].equals(result.frame[EVENT_TIMESTAMP])


def test_unsupported_scheme_lists_the_supported_ones() -> None:
    with pytest.raises(DataSourceError) as caught:
        load_transactions("s3://bucket/transactions.parquet")
    message = str(caught.value)
    assert "s3://bucket/transactions.parquet" in message
    assert "scheme 's3://' is not supported" in message
    assert "use a local path or a file:// URI" in message


def test_nonexistent_path_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "transactions.csv"
    with pytest.raises(DataSourceError, match=f"data file not found: {path} does not exist"):
        load_transactions(path)


def test_directory_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "looks_like.csv"
    folder.mkdir()
    with pytest.raises(DataSourceError, match=f"{folder} is a directory"):
        load_transactions(folder)


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(DataSourceError, match=f"{fifo} is not a regular file"):
        load_transactions(fifo)


def test_unsupported_extension_is_named(tmp_path: Path) -> None:
    path = tmp_path / "transactions.json"
    path.write_text("[]")
    with pytest.raises(DataSourceError) as caught:
        load_transactions(path)
    assert f"unsupported file type '.json' for {path}" in str(caught.value)
    assert ".csv, .csv.gz, .parquet, .pq" in str(caught.value)


@pytest.mark.parametrize("name", ["empty.csv", "empty.parquet"])
def test_zero_byte_file_is_empty(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.touch()
    with pytest.raises(DataSourceError, match=rf"{path} is empty \(0 bytes\)"):
        load_transactions(path)


def test_header_only_csv_has_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "header_only.csv"
    path.write_text(",".join(RAW_COLUMNS) + "\n")
    with pytest.raises(DataSourceError) as caught:
        load_transactions(path)
    assert f"{path} has a header but no data rows" in str(caught.value)
    assert "columns: transaction_id, customer_id" in str(caught.value)


def test_parquet_without_rows_is_refused(tmp_path: Path, generated: pd.DataFrame) -> None:
    path = tmp_path / "no_rows.parquet"
    generated.head(0).to_parquet(path)
    with pytest.raises(DataSourceError, match=f"{path} contains no rows"):
        load_transactions(path)


def test_corrupt_parquet_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"this is not parquet at all")
    with pytest.raises(DataSourceError, match=f"{path} could not be parsed as Parquet"):
        load_transactions(path)


def test_corrupt_csv_is_reported_with_the_parser_detail(tmp_path: Path) -> None:
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("transaction_id,amount\nt1,1.0\nt2,2.0,extra,fields\n")
    with pytest.raises(DataSourceError) as caught:
        load_transactions(ragged)
    assert f"{ragged} could not be parsed as CSV" in str(caught.value)
    assert "Expected 2 fields in line 3, saw 4" in str(caught.value)

    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81\x9f" * 50)
    with pytest.raises(DataSourceError, match=f"{binary} could not be parsed as CSV"):
        load_transactions(binary)


@pytest.fixture
def unreadable_file() -> Iterator[Path]:
    # Outside pytest's 0700 tmp dir so that only the file's own mode blocks the reader.
    with tempfile.TemporaryDirectory(prefix="kaizen-unreadable-") as folder:
        os.chmod(folder, 0o755)
        path = Path(folder) / "secret.csv"
        path.write_text(",".join(RAW_COLUMNS) + "\n")
        path.chmod(0o000)
        yield path
        path.chmod(0o600)


def load_error_as_unprivileged_user(path: Path) -> str:
    """The loader's error message, from a process the kernel really denies reading.

    Root ignores file modes, so under root the load runs in a forked child that drops
    to uid/gid 65534 first; otherwise in this process.
    """
    if os.geteuid() != 0:
        with pytest.raises(DataSourceError) as caught:
            load_transactions(path)
        return str(caught.value)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        message = "no error raised"
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            load_transactions(path)
        except DataSourceError as exc:
            message = str(exc)
        except BaseException as exc:
            message = f"unexpected {type(exc).__name__}: {exc}"
        finally:
            os.write(write_end, message.encode())
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        message = reader.read().decode()
    os.waitpid(pid, 0)
    return message


def test_unreadable_file_reports_permission_denied(unreadable_file: Path) -> None:
    message = load_error_as_unprivileged_user(unreadable_file)
    assert (
        message
        == f"cannot read {unreadable_file}: permission denied (check the file's permissions)"
    )


def test_ingest_generates_when_no_source() -> None:
    config = GeneratorConfig(rows=2_000, customers=100, merchants=20, days=7, seed=5)
    for source in (None, ""):
        result = ingest(source, config)
        assert isinstance(result, IngestResult)
        assert result.rows == 2_000
        assert result.source.startswith("synthetic(seed=5, rows=2000")
        pd.testing.assert_frame_equal(result.frame, generate_transactions(config))
    summary = result.summary
    assert summary["rows"] == 2_000
    assert summary["fraud_rate"] == pytest.approx(0.02)
    assert summary["customers"] == result.frame["customer_id"].nunique() <= 100
    assert summary["merchants"] <= 20
    assert summary["start"].startswith("2026-01-01")
    assert summary["end"].startswith("2026-01-07")


def test_ingest_loads_and_validates_a_file(tmp_path: Path, generated: pd.DataFrame) -> None:
    good = tmp_path / "good.parquet"
    generated.to_parquet(good, index=False)
    result = ingest(good, GeneratorConfig())
    assert result.source == str(good)
    assert result.rows == len(generated)

    bad = tmp_path / "bad.csv"
    broken = generated.head(20).copy()
    broken["amount"] = broken["amount"].astype(object)
    broken.loc[4, "amount"] = "abc"
    broken.to_csv(bad, index=False)
    with pytest.raises(DataValidationError) as caught:
        ingest(str(bad), GeneratorConfig())
    assert str(caught.value).startswith(f"Invalid transactions in {bad}: 1 failing check")
    assert "row 5: 'abc'" in str(caught.value)
