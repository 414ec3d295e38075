"""Feedback labels that last: stored in the object store and joined to logged predictions.

Labels come from ``POST /v1/models/<name>/feedback`` (the server stores them before it
answers) and from ``kaizen feedback FILE`` (bulk, CSV or Parquet with ``prediction_id``,
``label`` and an optional ``time``). Each batch is one Parquet file at::

    labels/<model>/date=YYYY-MM-DD/<uuid>.parquet

(the date the label became known), with the columns ``prediction_id``, ``label`` (0/1),
``time`` (when the label became known, UTC), ``received`` (when Kaizen stored it) and
``source`` (``api`` or ``file``).

**Late and duplicate labels: the latest wins.** A label may arrive any time after its
prediction, days later, and is joined by prediction id whatever the date. When a prediction
has several labels, the one with the latest ``time`` counts (ties: the one stored last), so
a correction, such as a chargeback reversed, replaces the first verdict. Labels for ids that
were never logged are kept and simply match nothing.
"""

from __future__ import annotations

import io
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

    from kaizen.platform.storage import ObjectStore

PREFIX = "labels"
LABEL_COLUMNS = ("prediction_id", "label", "time", "received", "source")
FILE_COLUMNS = ("prediction_id", "label", "time")
#: Row errors listed in one message; the count of the rest follows.
MAX_REPORTED_ERRORS = 20

Source = Literal["api", "file"]


class LabelFileError(ValueError):
    """A label file that cannot be used; the message names every bad row (up to a limit)."""


@dataclass(frozen=True)
class Label:
    """The true label of one prediction.

    Attributes:
        prediction_id: The prediction's id, as the server returned it.
        label: 1 for fraud, 0 otherwise.
        time: When the label became known (UTC).
    """

    prediction_id: str
    label: int
    time: datetime


def store_labels(
    store: ObjectStore,
    model_name: str,
    labels: Sequence[Label],
    *,
    source: Source,
    received: datetime | None = None,
) -> list[str]:
    """Write ``labels`` durably, one Parquet file per date of their ``time``.

    Args:
        store: The object store.
        model_name: The model whose predictions they label.
        labels: The labels.
        source: ``api`` (the feedback endpoint) or ``file`` (``kaizen feedback``).
        received: When they were stored (now when None).

    Returns:
        The keys written (none for no labels).

    Raises:
        kaizen.platform.storage.StorageError: the store refused a write.
    """
    import pandas as pd

    stamp = received or datetime.now(UTC)
    by_day: dict[str, list[Label]] = {}
    for label in labels:
        by_day.setdefault(label.time.astimezone(UTC).strftime("%Y-%m-%d"), []).append(label)
    keys = []
    for day, rows in sorted(by_day.items()):
        frame = pd.DataFrame(
            {
                "prediction_id": [row.prediction_id for row in rows],
                "label": pd.array([row.label for row in rows], dtype="int8"),
                "time": pd.to_datetime([row.time for row in rows], utc=True),
                "received": pd.Timestamp(stamp.astimezone(UTC)),
                "source": source,
            }
        )
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        key = f"{PREFIX}/{model_name}/date={day}/{uuid.uuid4().hex}.parquet"
        store.put_bytes(key, buffer.getvalue())
        keys.append(key)
    return keys


def read_labels(store: ObjectStore, model_name: str, *, latest_only: bool = True) -> pd.DataFrame:
    """The stored labels of ``model_name``.

    Args:
        store: The object store.
        model_name: The model.
        latest_only: Keep one label per prediction id, the latest (see the module's rule).

    Returns:
        Columns ``prediction_id``, ``label``, ``time``, ``received``, ``source``.
    """
    import pandas as pd

    frames = [
        pd.read_parquet(io.BytesIO(store.get_bytes(key)))
        for key in store.list(f"{PREFIX}/{model_name}/")
        if key.endswith(".parquet")
    ]
    if not frames:
        return pd.DataFrame(columns=list(LABEL_COLUMNS))
    labels = pd.concat(frames, ignore_index=True)
    if latest_only:
        labels = (
            labels.sort_values(["time", "received"], kind="stable")
            .drop_duplicates("prediction_id", keep="last")
            .reset_index(drop=True)
        )
    return labels


def labelled_predictions(
    store: ObjectStore, model_name: str, *, since: str | None = None
) -> pd.DataFrame:
    """Logged predictions joined with their latest label (inner join on ``prediction_id``).

    Args:
        store: The object store.
        model_name: The model.
        since: First prediction date (``YYYY-MM-DD``) to read; None reads all.

    Returns:
        The prediction log's columns, plus ``label`` and ``label_time``.
    """
    from kaizen.monitoring.predictions import read_predictions

    predictions = read_predictions(store, model_name, since=since)
    labels = read_labels(store, model_name)[["prediction_id", "label", "time"]].rename(
        columns={"time": "label_time"}
    )
    return predictions.merge(labels, on="prediction_id", how="inner")


def read_label_file(path: Path, *, now: datetime | None = None) -> list[Label]:
    """Read and validate a bulk label file (CSV or Parquet).

    Columns: ``prediction_id`` (non-empty text), ``label`` (0/1 or true/false), and
    optionally ``time`` (ISO 8601; a time without offset is UTC; missing or empty: now).

    Args:
        path: The file (``.csv`` or ``.parquet``).
        now: The time given to rows without one (the current time when None).

    Returns:
        The labels, in file order.

    Raises:
        LabelFileError: the file is unreadable, lacks or has unknown columns, or has bad
            rows; rows are numbered as a spreadsheet shows them (CSV: the header is line 1).
    """
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            first_row = 2  # line 1 is the header
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
            first_row = 1
        else:
            raise LabelFileError(
                f"{path}: expected a .csv or .parquet file, got {suffix or 'no extension'!r}"
            )
    except LabelFileError:
        raise
    except FileNotFoundError:
        raise LabelFileError(f"{path}: no such file") from None
    except Exception as error:
        raise LabelFileError(f"{path}: cannot read it as {suffix[1:]}: {error}") from None
    columns = [str(column) for column in frame.columns]
    missing = [column for column in ("prediction_id", "label") if column not in columns]
    unknown = sorted(set(columns) - set(FILE_COLUMNS))
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"missing column(s) {missing}")
        if unknown:
            problems.append(f"unknown column(s) {unknown}")
        raise LabelFileError(
            f"{path}: {'; '.join(problems)}; expected prediction_id, label[, time], got {columns}"
        )
    if frame.empty:
        raise LabelFileError(f"{path}: no rows")
    default_time = now or datetime.now(UTC)
    labels: list[Label] = []
    errors: list[str] = []
    has_time = "time" in columns
    for position, record in enumerate(frame.to_dict("records")):
        row = position + first_row
        try:
            labels.append(
                Label(
                    prediction_id=_prediction_id(record["prediction_id"]),
                    label=_label(record["label"]),
                    time=_time(record["time"], default_time) if has_time else default_time,
                )
            )
        except ValueError as error:
            errors.append(f"row {row}: {error}")
    if errors:
        shown = errors[:MAX_REPORTED_ERRORS]
        more = len(errors) - len(shown)
        tail = f"\n  ... and {more} more bad row(s)" if more else ""
        raise LabelFileError(
            f"{path}: {len(errors)} bad row(s) of {len(frame)}, nothing stored:\n  "
            + "\n  ".join(shown)
            + tail
        )
    return labels


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def _prediction_id(value: Any) -> str:
    if _missing(value) or not isinstance(value, str) or not value.strip():
        raise ValueError(f"prediction_id: expected a non-empty id, got {value!r}")
    return value.strip()


def _label(value: Any) -> int:
    text = str(value).strip().lower() if not _missing(value) else ""
    if isinstance(value, bool):
        return int(value)
    if text in ("1", "true", "1.0"):
        return 1
    if text in ("0", "false", "0.0"):
        return 0
    raise ValueError(f"label: expected 0 or 1 (or true/false), got {value!r}")


def _time(value: Any, default: datetime) -> datetime:
    import pandas as pd

    if _missing(value) or value is pd.NaT:
        return default
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ValueError(
            f"time: expected an ISO 8601 time such as 2026-12-03T09:30:00Z, got {value!r}"
        ) from None
    if stamp is pd.NaT:
        return default
    stamp = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
    return stamp.to_pydatetime()
