"""Shared MLflow plumbing: settings to URIs, one client per store, a cross-process lock, retries.

MLflow is imported inside the functions: it takes over a second to import, and most commands
never touch it.

SQLite allows one writer at a time, and MLflow's SQL stores do read-then-write sequences
(next version number, find-or-create) that are not atomic across processes. Every Kaizen write
to the tracking store or the registry therefore runs under :func:`store_lock`, an exclusive
``fcntl.flock`` on a file beside the SQLite database (or under ``KAIZEN_HOME`` for a remote
store), and each MLflow call is retried a bounded number of times when SQLite still reports
``database is locked`` (another program, such as ``mlflow ui``, holding a read lock).

That lock is a file lock: it serializes the processes of one host only. Pipeline runs on a
cluster share one MLflow tracking server from many pods, each with its own lock, so nothing
that must hold across hosts relies on it: find-or-create steps tolerate losing a race to
another host (:func:`ensure_experiment`, the registered model), and the registry's aliases
follow rules that concurrent writers converge on (see :mod:`kaizen.registry.models`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from kaizen.platform.locks import LockTimeoutError, acquire_file_lock, release_file_lock
from kaizen.platform.names import DEFAULT_PIPELINE_NAME
from kaizen.platform.settings import Settings

T = TypeVar("T")

#: The MLflow experiment every pipeline run is tracked in (the pipeline's name).
EXPERIMENT_NAME = DEFAULT_PIPELINE_NAME  # one MLflow experiment per pipeline, named like it

# Tag keys. MLflow's own keys (mlflow.*) are used where the UI understands them.
TAG_ROLE = "kaizen.role"
TAG_PIPELINE_RUN_ID = "kaizen.pipeline_run_id"
TAG_ROUND = "kaizen.round"
TAG_TRIAL = "kaizen.trial"
MLFLOW_PARENT_RUN_ID = "mlflow.parentRunId"
MLFLOW_RUN_NAME = "mlflow.runName"

# Attempts and first back-off of a call SQLite refused with "database is locked".
LOCKED_RETRIES = 8
LOCKED_BACKOFF_S = 0.05
# How long a writer waits for the store lock before giving up with an error.
LOCK_TIMEOUT_S = 120.0

_LOCKED_MESSAGES = ("database is locked", "database table is locked", "database is busy")
_DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "file", "")


class StoreLockTimeoutError(TimeoutError):
    """Another process held the tracking store lock for longer than the timeout."""


@dataclass(frozen=True)
class StoreConfig:
    """Where tracking, registry and artifacts live, derived from the settings.

    Attributes:
        tracking_uri: MLflow tracking and registry URI.
        artifact_root: URI under which experiments keep their artifacts, or None when a
            tracking server decides (an ``http(s)`` tracking URI).
        lock_path: the file whose ``flock`` serializes writers.
        model_name: the registered model.
        settings: the settings everything was derived from.
    """

    tracking_uri: str
    artifact_root: str | None
    lock_path: Path
    model_name: str
    settings: Settings


def artifact_root(settings: Settings) -> str:
    """The artifact root in the object store: ``file://$KAIZEN_HOME/objects/mlflow`` or S3.

    Args:
        settings: platform settings (``storage_backend``, ``s3_bucket``, ``home``).

    Returns:
        ``file:///.../objects/mlflow`` for the local backend, ``s3://<bucket>/mlflow`` for S3.
    """
    if settings.storage_backend == "s3":
        return f"s3://{settings.s3_bucket}/mlflow"
    return (settings.object_store_dir / "mlflow").absolute().as_uri()


def artifact_environment(settings: Settings) -> dict[str, str]:
    """Environment variables MLflow's S3 artifact client (boto3) needs for the object store.

    Empty for the local backend. For S3 it maps the endpoint (with ``https://`` unless
    ``s3_secure`` is off), the credentials and the region. The values include secrets: put
    them into the environment, never into logs.

    Args:
        settings: platform settings.

    Returns:
        Variable name to value.
    """
    if settings.storage_backend != "s3":
        return {}
    scheme = "https" if settings.s3_secure else "http"
    environment = {
        "MLFLOW_S3_ENDPOINT_URL": f"{scheme}://{settings.s3_endpoint}",
        "AWS_ACCESS_KEY_ID": settings.s3_access_key.get_secret_value(),
        "AWS_SECRET_ACCESS_KEY": settings.s3_secret_key.get_secret_value(),
    }
    if settings.s3_region:
        environment["AWS_DEFAULT_REGION"] = settings.s3_region
    return environment


def _is_database_uri(uri: str) -> bool:
    scheme = urlparse(uri).scheme.split("+", 1)[0]
    return scheme in _DATABASE_SCHEMES


def sqlite_database(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI, or None for any other URI."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


def store_config(settings: Settings) -> StoreConfig:
    """Resolve tracking URI, artifact root and lock file from the settings.

    Args:
        settings: platform settings.

    Returns:
        The resolved configuration.
    """
    uri = settings.tracking_uri
    database = sqlite_database(uri)
    if database is not None:
        # Beside the database: two homes sharing one database still share one lock.
        lock_path = database.with_name(database.name + ".lock")
    else:
        lock_path = settings.home / "locks" / "mlflow.lock"
    return StoreConfig(
        tracking_uri=uri,
        # A tracking server (http) decides where artifacts go; a database does not.
        artifact_root=artifact_root(settings) if _is_database_uri(uri) else None,
        lock_path=lock_path.absolute(),
        model_name=settings.model_name,
        settings=settings,
    )


def ui_command(settings: Settings) -> str:
    """The ``mlflow ui`` command that shows this store's runs, artifacts and models.

    Args:
        settings: platform settings.

    Returns:
        A shell command line.
    """
    config = store_config(settings)
    return f"mlflow ui --backend-store-uri {config.tracking_uri} --port 5000"


# One lock per lock file and process: flock() belongs to an open file, so a second open in
# the same process would wait for itself. Depth counts re-entries on the same thread.
_process_locks: dict[Path, threading.RLock] = {}
_held: dict[Path, tuple[int, int]] = {}
_process_locks_guard = threading.Lock()


@contextmanager
def store_lock(config: StoreConfig, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the exclusive cross-process lock of the tracking store (re-entrant).

    Args:
        config: the store whose lock to take.
        timeout_s: how long to wait for another process to release it.

    Raises:
        StoreLockTimeoutError: the lock stayed taken for ``timeout_s`` seconds.
    """
    path = config.lock_path
    with _process_locks_guard:
        thread_lock = _process_locks.setdefault(path, threading.RLock())
    if not thread_lock.acquire(timeout=timeout_s):
        raise StoreLockTimeoutError(
            f"another thread held the MLflow store lock {path} for over {timeout_s:.0f} s"
        )
    try:
        descriptor, depth = _held.get(path, (-1, 0))
        if depth == 0:
            descriptor = _acquire_file_lock(path, timeout_s)
        _held[path] = (descriptor, depth + 1)
        try:
            yield
        finally:
            descriptor, depth = _held[path]
            if depth == 1:
                del _held[path]
                release_file_lock(descriptor)
            else:
                _held[path] = (descriptor, depth - 1)
    finally:
        thread_lock.release()


def _acquire_file_lock(path: Path, timeout_s: float) -> int:
    try:
        return acquire_file_lock(path, timeout_s)
    except LockTimeoutError:
        raise StoreLockTimeoutError(
            f"another process held the MLflow store lock {path} for over "
            f"{timeout_s:.0f} s; is a registration stuck? (the lock is released when "
            "its process exits)"
        ) from None


def is_locked_error(error: BaseException) -> bool:
    """True if ``error`` (or its cause) is SQLite refusing a write because of another writer."""
    seen: BaseException | None = error
    while seen is not None:
        if any(message in str(seen).lower() for message in _LOCKED_MESSAGES):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def retry_locked(call: Callable[[], T], what: str) -> T:
    """Run ``call``; on ``database is locked`` wait and try again, a bounded number of times.

    Args:
        call: one MLflow operation; it must have no effect when it fails.
        what: the operation's name, for the error message.

    Raises:
        RuntimeError: the database stayed locked for every attempt.
    """
    delay = LOCKED_BACKOFF_S
    for attempt in range(1, LOCKED_RETRIES + 1):
        try:
            return call()
        except Exception as error:
            if not is_locked_error(error):
                raise
            if attempt == LOCKED_RETRIES:
                raise RuntimeError(
                    f"MLflow {what} failed: the tracking database stayed locked after "
                    f"{LOCKED_RETRIES} attempts ({error})"
                ) from error
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


class RetryingClient:
    """An ``MlflowClient`` whose every method call is wrapped in :func:`retry_locked`."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            return retry_locked(lambda: attribute(*args, **kwargs), name)

        return call


_clients: dict[str, RetryingClient] = {}


def client_for(config: StoreConfig) -> Any:
    """The MLflow client of ``config``'s store, created (and its schema set up) once.

    A new SQLite database gets MLflow's tables on first use; that happens under the store
    lock, so processes starting together do not race to create them.
    """
    if config.tracking_uri in _clients:
        return _clients[config.tracking_uri]
    # MLflow draws a progress bar per download; step logs are no place for one.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name, value in artifact_environment(config.settings).items():
        # An operator's explicit MLflow/AWS environment wins over the Kaizen settings.
        os.environ.setdefault(name, value)
    from mlflow import MlflowClient

    database = sqlite_database(config.tracking_uri)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    with store_lock(config):
        client = MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.tracking_uri)
        # Both stores create or check their tables on first access.
        retry_locked(lambda: client.search_experiments(max_results=1), "schema setup")
        retry_locked(lambda: client.search_registered_models(max_results=1), "schema setup")
    wrapped = RetryingClient(client)
    _clients[config.tracking_uri] = wrapped
    return wrapped


def ensure_experiment(client: Any, config: StoreConfig, name: str = EXPERIMENT_NAME) -> str:
    """The id of experiment ``name``, created with its artifact location if missing."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    with store_lock(config):
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return str(experiment.experiment_id)
        location = f"{config.artifact_root}/{name}" if config.artifact_root else None
        try:
            return str(client.create_experiment(name, artifact_location=location))
        except MlflowException as error:
            # Another host (whose lock is not ours) created it between our read and write.
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise RuntimeError(
                f"MLflow said experiment {name!r} already exists, yet cannot find it"
            )
        return str(experiment.experiment_id)


def millis(iso_time: str | None) -> int | None:
    """Milliseconds since the epoch of an ISO 8601 time (``Z`` accepted), None for None."""
    if not iso_time:
        return None
    from datetime import datetime

    return int(datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp() * 1000)


def iso(milliseconds: int | None) -> str | None:
    """ISO 8601 UTC time of a millisecond timestamp."""
    if milliseconds is None:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(milliseconds / 1000, UTC).isoformat(timespec="seconds")


def quote_filter_value(value: str, what: str) -> str:
    """``value`` quoted for an MLflow filter string.

    Raises:
        ValueError: ``value`` holds a quote, a backslash or a control character, which
            MLflow's filter grammar cannot express.
    """
    if not value or any(ch in value for ch in "'\"\\") or any(ord(ch) < 32 for ch in value):
        raise ValueError(
            f"{what} {value!r} must be non-empty and hold no quotes, backslashes or control "
            "characters"
        )
    return f"'{value}'"
