"""Ingestion: generated transactions or a user's own CSV/Parquet file, always validated.

``load_transactions`` reads a file and refuses sources it cannot use with a
``DataSourceError`` that names the path and the problem; ``ingest`` is the single entry
point the pipeline calls: it generates when no source is given, otherwise loads, and
always validates (``kaizen.data.schema.validate_transactions``).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd

from kaizen.data.columns import (
    CUSTOMER_ID,
    EVENT_TIMESTAMP,
    LABEL,
    LABEL_TIMESTAMP,
    MERCHANT_ID,
)
from kaizen.data.generator import GeneratorConfig, generate_transactions
from kaizen.data.schema import DataValidationError, validate_transactions

__all__ = [
    "DataSourceError",
    "DataValidationError",  # re-exported: ingest() raises it for data that fails checks
    "IngestResult",
    "ingest",
    "load_transactions",
    "resolve_source",
    "summarize",
]

CSV_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz")
PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".pq")
SUPPORTED_SCHEMES: tuple[str, ...] = ("file",)

_URI_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class DataSourceError(ValueError):
    """A data source cannot be used: missing, unreadable, empty or not parseable."""


@dataclass(frozen=True)
class IngestResult:
    """Validated transactions and where they came from.

    Attributes:
        frame: The normalized transactions (see ``validate_transactions``).
        source: A description of the source: the file path, or the generator config.
        rows: Number of transactions.
        summary: ``start``/``end`` (ISO timestamps of the first and last event),
            ``fraud_rate``, ``customers`` and ``merchants`` (distinct ids).
    """

    frame: pd.DataFrame
    source: str
    rows: int
    summary: dict[str, Any] = field(default_factory=dict)


def resolve_source(source: str | os.PathLike[str]) -> Path:
    """Turn a path or ``file://`` URI into a local path.

    Args:
        source: A local path, or a ``file://`` URI (``file:///data/tx.csv``).

    Returns:
        The local path (``~`` expanded).

    Raises:
        DataSourceError: For any other URI scheme, or a ``file://`` URI naming a
            remote host.
    """
    text = os.fspath(source)
    match = _URI_SCHEME.match(text)
    if not match:
        return Path(text).expanduser()
    scheme = match.group(1).lower()
    if scheme not in SUPPORTED_SCHEMES:
        raise DataSourceError(
            f"unsupported source {text!r}: scheme '{scheme}://' is not supported; "
            "use a local path or a file:// URI (s3:// is not supported yet)"
        )
    parsed = urlparse(text)
    if parsed.netloc not in ("", "localhost"):
        raise DataSourceError(
            f"unsupported source {text!r}: a file:// URI must name a local file "
            f"(file:///path), not host {parsed.netloc!r}"
        )
    return Path(unquote(parsed.path))


def _file_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    suffix = "".join(path.suffixes) or "(none)"
    raise DataSourceError(
        f"unsupported file type {suffix!r} for {path}: expected one of "
        f"{', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}"
    )


def load_transactions(source: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a user's transactions file, without validating its content.

    CSV cells are read as strings (empty cells as missing), so that validation can name
    the exact value it refuses; Parquet keeps its own types. ``label_timestamp`` is
    optional in user data: when the column is absent it is set to ``event_timestamp``,
    i.e. every label is treated as known at transaction time (which makes
    point-in-time merchant fraud rates see labels earlier than they would in reality).

    Args:
        source: Path or ``file://`` URI of a ``.csv``/``.csv.gz``/``.parquet``/``.pq``
            file.

    Returns:
        The raw frame as read (plus ``label_timestamp`` if it was absent). Pass it to
        ``validate_transactions`` (or use ``ingest``) to get normalized dtypes.

    Raises:
        DataSourceError: Naming the path, if the source uses an unsupported scheme, does
            not exist, is a directory or not a regular file, has an unsupported
            extension, cannot be read (permissions or I/O error), is empty (0 bytes, or
            a header without rows), or cannot be parsed as CSV/Parquet.
    """
    path = resolve_source(source)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise DataSourceError(f"data file not found: {path} does not exist") from None
    except NotADirectoryError:
        raise DataSourceError(
            f"data file not found: {path} (a parent of it is not a directory)"
        ) from None
    except PermissionError:
        raise DataSourceError(
            f"cannot read {path}: permission denied while looking it up"
        ) from None
    if stat.S_ISDIR(info.st_mode):
        raise DataSourceError(f"{path} is a directory; expected a CSV or Parquet file")
    if not stat.S_ISREG(info.st_mode):
        # A FIFO or device would block or stream forever instead of holding a table.
        raise DataSourceError(f"{path} is not a regular file; expected a CSV or Parquet file")
    kind = _file_kind(path)

    try:
        with path.open("rb") as handle:
            first = handle.read(1)
    except PermissionError:
        raise DataSourceError(
            f"cannot read {path}: permission denied (check the file's permissions)"
        ) from None
    except OSError as exc:
        raise DataSourceError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not first:
        raise DataSourceError(f"{path} is empty (0 bytes); expected a {kind.upper()} table")

    frame = _read_csv(path) if kind == "csv" else _read_parquet(path)
    if frame.empty:
        if kind == "csv":
            raise DataSourceError(
                f"{path} has a header but no data rows (columns: {', '.join(frame.columns)})"
            )
        raise DataSourceError(f"{path} contains no rows")
    if LABEL_TIMESTAMP not in frame.columns and EVENT_TIMESTAMP in frame.columns:
        frame[LABEL_TIMESTAMP] = frame[EVENT_TIMESTAMP]
    return frame


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=True)
    except pd.errors.EmptyDataError:
        raise DataSourceError(f"{path} has no header line and no data") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError, EOFError) as exc:
        raise DataSourceError(f"{path} could not be parsed as CSV: {exc}") from None
    return frame


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow as pa  # pandas needs it anyway; imported here for its error type

    try:
        return pd.read_parquet(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataSourceError(f"{path} could not be parsed as Parquet: {exc}") from None


def summarize(frame: pd.DataFrame) -> dict[str, Any]:
    """Summary of validated transactions: time range, fraud rate, distinct ids.

    Args:
        frame: A frame returned by ``validate_transactions``.

    Returns:
        ``rows``, ``start``, ``end`` (ISO 8601 UTC), ``fraud_rate``, ``customers`` and
        ``merchants``.
    """
    events = frame[EVENT_TIMESTAMP]
    return {
        "rows": len(frame),
        "start": events.min().isoformat(),
        "end": events.max().isoformat(),
        "fraud_rate": float(frame[LABEL].mean()),
        "customers": int(frame[CUSTOMER_ID].nunique()),
        "merchants": int(frame[MERCHANT_ID].nunique()),
    }


def ingest(
    source: str | os.PathLike[str] | None,
    config: GeneratorConfig | None = None,
) -> IngestResult:
    """Generate or load transactions, and validate them.

    Args:
        source: A path or ``file://`` URI of the user's CSV/Parquet file; None or ""
            generates synthetic data instead.
        config: Generator parameters, used only when generating; defaults to
            ``GeneratorConfig()``.

    Returns:
        The validated, normalized frame with its source description and summary.

    Raises:
        DataSourceError: If the file cannot be used (see ``load_transactions``).
        DataValidationError: If the data fails validation; lists every failing check.
    """
    if source is None or os.fspath(source) == "":
        config = config or GeneratorConfig()
        description = (
            f"synthetic(seed={config.seed}, rows={config.rows}, customers={config.customers}, "
            f"merchants={config.merchants}, days={config.days}, "
            f"fraud_rate={config.fraud_rate}, drift={config.drift}, start={config.start})"
        )
        raw = generate_transactions(config)
    else:
        description = str(resolve_source(source))
        raw = load_transactions(source)
    frame = validate_transactions(raw, source=description)
    return IngestResult(frame=frame, source=description, rows=len(frame), summary=summarize(frame))
