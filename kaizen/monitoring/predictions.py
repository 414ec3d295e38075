"""The prediction log: every prediction the server makes, kept in the object store.

The server hands each answered request's predictions to a :class:`PredictionLog`, which
buffers them in memory (at most ``max_rows``) and writes them in batches, from a background
thread, as Parquet files at::

    predictions/<model>/date=YYYY-MM-DD/model_version=N/<uuid>.parquet

one file per (date, version) per flush, written atomically (the object store's
write-once put). A batch is written when ``flush_rows`` rows are waiting, every
``flush_seconds`` otherwise, and once more when the log is closed (the server closes it
after draining on SIGTERM).

Logging never blocks or fails a request: :meth:`PredictionLog.record` only appends under a
lock; when the buffer is full, the new rows are dropped and counted in
``kaizen_prediction_log_dropped_rows_total{reason="buffer_full"}``. A batch the store refuses
is put back when there is room and retried at the next flush, else dropped and counted with
``reason="write_failed"``.

Each file holds the columns ``prediction_id``, ``time`` (UTC), ``model_name``, ``variant``
(champion or challenger), ``score`` (the fraud probability), ``decision`` (the is_fraud
answered) and one float column per model feature, by its name; ``date`` and
``model_version`` are the partitions (``pandas.read_parquet`` on the folder adds them back).
"""

from __future__ import annotations

import io
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

if TYPE_CHECKING:
    import pandas as pd

    from kaizen.platform.storage import ObjectStore

logger = logging.getLogger("kaizen.monitoring.predictions")

PREFIX = "predictions"
#: Columns every logged prediction has; the model's features follow, by name.
BASE_COLUMNS = ("prediction_id", "time", "model_name", "variant", "score", "decision")
PARTITION_COLUMNS = ("date", "model_version")
DEFAULT_MAX_ROWS = 100_000
DEFAULT_FLUSH_ROWS = 5_000
DEFAULT_FLUSH_SECONDS = 30.0

DROPPED = Counter(
    "kaizen_prediction_log_dropped_rows",
    "Predictions not logged: the buffer was full, or the object store refused a batch.",
    ["model_name", "reason"],
)
WRITTEN = Counter(
    "kaizen_prediction_log_written_rows",
    "Predictions written to the object store.",
    ["model_name"],
)
BUFFERED = Gauge(
    "kaizen_prediction_log_buffered_rows",
    "Predictions waiting in memory for the next write.",
    ["model_name"],
)
LAST_WRITE = Gauge(
    "kaizen_prediction_log_last_write_timestamp_seconds",
    "Unix time of the last batch written (0: none yet); a stalled log stops moving it.",
    ["model_name"],
)


@dataclass(frozen=True)
class LoggedPrediction:
    """One prediction as the server answered it.

    Attributes:
        prediction_id: The id returned to the client (V1) or made up for the log (V2).
        time: When it was answered (UTC).
        model_version: Registry version that scored it.
        variant: ``champion`` or ``challenger``.
        score: The fraud probability.
        decision: The ``is_fraud`` answered.
        features: The feature vector scored, in model order.
        feature_names: The names of ``features`` (the scoring version's).
    """

    prediction_id: str
    time: datetime
    model_version: int
    variant: str
    score: float
    decision: bool
    features: tuple[float, ...]
    feature_names: tuple[str, ...]


def partition_key(model: str, day: str, version: int) -> str:
    """The folder of one partition: ``predictions/<model>/date=<day>/model_version=<N>``."""
    return f"{PREFIX}/{model}/date={day}/model_version={version}"


class PredictionLog:
    """A bounded in-memory buffer of predictions, written to the object store in batches.

    Args:
        model_name: The served model's name (the key prefix and the metrics label).
        store: Where the Parquet files go.
        max_rows: Most rows held in memory; more are dropped and counted.
        flush_rows: Rows waiting that trigger a write before the interval ends.
        flush_seconds: Longest a row waits before it is written.

    Raises:
        ValueError: a limit out of range, naming it.
    """

    def __init__(
        self,
        model_name: str,
        store: ObjectStore,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        flush_rows: int = DEFAULT_FLUSH_ROWS,
        flush_seconds: float = DEFAULT_FLUSH_SECONDS,
    ) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows}")
        if not 1 <= flush_rows <= max_rows:
            raise ValueError(
                f"flush_rows must be within [1, max_rows={max_rows}], got {flush_rows}"
            )
        if not flush_seconds > 0:
            raise ValueError(f"flush_seconds must be positive, got {flush_seconds}")
        self.model_name = model_name
        self.store = store
        self.max_rows = max_rows
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._rows: deque[LoggedPrediction] = deque()
        self._lock = threading.Lock()
        # Serializes writes: the background thread and close() never write the same rows.
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        DROPPED.labels(model_name, "buffer_full")
        DROPPED.labels(model_name, "write_failed")
        WRITTEN.labels(model_name)
        BUFFERED.labels(model_name).set(0)
        LAST_WRITE.labels(model_name)

    def record(self, predictions: Sequence[LoggedPrediction]) -> int:
        """Queue ``predictions`` for the next write; never blocks on I/O, never raises.

        Args:
            predictions: The rows of one answered request.

        Returns:
            How many were queued; the rest were dropped (buffer full) and counted.
        """
        try:
            with self._lock:
                room = max(0, self.max_rows - len(self._rows))
                taken = list(predictions[:room])
                self._rows.extend(taken)
                waiting = len(self._rows)
            dropped = len(predictions) - len(taken)
            if dropped:
                DROPPED.labels(self.model_name, "buffer_full").inc(dropped)
            BUFFERED.labels(self.model_name).set(waiting)
            if waiting >= self.flush_rows:
                self._wake.set()
            return len(taken)
        except Exception:  # the request must not notice the log
            logger.exception("prediction log %s: could not queue predictions", self.model_name)
            return 0

    def start(self) -> None:
        """Start the background writer (idempotent)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._closing.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"kaizen-prediction-log-{self.model_name}", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self._closing.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            if self._closing.is_set():
                return
            try:
                self.flush()
            except Exception:  # the writer outlives one bad batch
                logger.exception("prediction log %s: flush failed", self.model_name)

    def close(self) -> int:
        """Stop the background writer and write everything still buffered.

        Returns:
            Rows written by this last flush.
        """
        self._closing.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        written = self.flush()
        if written:
            logger.info(
                "prediction log %s: wrote the last %d predictions", self.model_name, written
            )
        return written

    def flush(self) -> int:
        """Write every buffered row now, one Parquet file per (date, version).

        Returns:
            Rows written; rows of a batch the store refused are kept for the next flush
            when there is room, else dropped and counted.
        """
        from kaizen.platform.storage import StorageError

        with self._write_lock:
            with self._lock:
                batch = list(self._rows)
                self._rows.clear()
            BUFFERED.labels(self.model_name).set(0)
            if not batch:
                return 0
            written = 0
            failed: list[LoggedPrediction] = []
            for (day, version), rows in _partitions(batch):
                key = f"{partition_key(self.model_name, day, version)}/{uuid.uuid4().hex}.parquet"
                try:
                    self.store.put_bytes(key, self._parquet(rows))
                except (StorageError, OSError, ValueError) as error:
                    logger.error(
                        "prediction log %s: could not write %d predictions (%s); kept for the "
                        "next try when there is room: %s",
                        self.model_name,
                        len(rows),
                        key,
                        error,
                    )
                    failed.extend(rows)
                    continue
                written += len(rows)
            if written:
                WRITTEN.labels(self.model_name).inc(written)
                LAST_WRITE.labels(self.model_name).set(time.time())
            if failed:
                self._requeue(failed)
            return written

    def _requeue(self, rows: list[LoggedPrediction]) -> None:
        with self._lock:
            room = max(0, self.max_rows - len(self._rows))
            kept = rows[:room]
            self._rows.extendleft(reversed(kept))
            waiting = len(self._rows)
        if len(rows) > len(kept):
            DROPPED.labels(self.model_name, "write_failed").inc(len(rows) - len(kept))
        BUFFERED.labels(self.model_name).set(waiting)

    def _parquet(self, rows: list[LoggedPrediction]) -> bytes:
        import pandas as pd

        # One version per file, so one feature list per file.
        names = list(rows[0].feature_names)
        clash = sorted(set(names) & {*BASE_COLUMNS, *PARTITION_COLUMNS})
        if clash:
            raise ValueError(f"feature name(s) {clash} clash with the log's own columns")
        frame = pd.DataFrame(
            {
                "prediction_id": [row.prediction_id for row in rows],
                "time": pd.to_datetime([row.time for row in rows], utc=True),
                "model_name": self.model_name,
                "variant": [row.variant for row in rows],
                "score": [float(row.score) for row in rows],
                "decision": [bool(row.decision) for row in rows],
            }
        )
        values = pd.DataFrame([row.features for row in rows], columns=names, dtype="float64")
        frame = pd.concat([frame, values], axis=1)
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return buffer.getvalue()


def _partitions(
    rows: list[LoggedPrediction],
) -> Iterator[tuple[tuple[str, int], list[LoggedPrediction]]]:
    groups: dict[tuple[str, int], list[LoggedPrediction]] = {}
    for row in rows:
        day = row.time.astimezone(UTC).strftime("%Y-%m-%d")
        groups.setdefault((day, row.model_version), []).append(row)
    yield from groups.items()


def read_predictions(
    store: ObjectStore, model_name: str, *, since: str | None = None
) -> pd.DataFrame:
    """Every logged prediction of ``model_name``, with ``date`` and ``model_version`` columns.

    Args:
        store: The object store the server wrote to.
        model_name: The model.
        since: First date (``YYYY-MM-DD``) to read; None reads all.

    Returns:
        One row per prediction (empty, with the base columns, when none were logged).
    """
    import pandas as pd

    frames = []
    for key in store.list(f"{PREFIX}/{model_name}/"):
        parts = _key_partitions(key)
        if parts is None or (since is not None and parts[0] < since):
            continue
        frame = pd.read_parquet(io.BytesIO(store.get_bytes(key)))
        frames.append(frame.assign(date=parts[0], model_version=parts[1]))
    if not frames:
        return pd.DataFrame(columns=[*BASE_COLUMNS, *PARTITION_COLUMNS])
    return pd.concat(frames, ignore_index=True)


def _key_partitions(key: str) -> tuple[str, int] | None:
    parts: dict[str, Any] = {}
    for part in key.split("/"):
        name, _, value = part.partition("=")
        if name in PARTITION_COLUMNS and value:
            parts[name] = value
    if not key.endswith(".parquet") or set(parts) != set(PARTITION_COLUMNS):
        return None
    try:
        return str(parts["date"]), int(parts["model_version"])
    except ValueError:
        return None


def new_prediction_id() -> str:
    """A fresh prediction id (32 hex digits)."""
    return uuid.uuid4().hex


def now() -> datetime:
    """The current UTC time, as logged."""
    return datetime.now(UTC)
