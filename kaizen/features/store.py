"""Feast operations: apply the repo, materialize, historical and online retrieval.

Feature names are Feast's full names, ``<feature view>__<feature>`` (for example
``customer_stats_fv__txn_count_1h``): unique across views, the same in training frames and
online responses, and readable back to the definition that produced them.

Missing stored values mean "no activity" and are filled with 0 in training and serving
alike: an entity never seen before, or one whose latest row is older than its view's TTL
(the longest window, so every window has emptied since). On-demand values are computed
from those and the request, so they are never filled; a gap there is an error.

Online lookups come in two forms with the same values: :func:`online_features` resolves the
feature service on each call and answers a DataFrame; :class:`OnlineFeatureReader` (over
:func:`shared_feature_store` in a server) resolves it once and answers numpy, so a
single-row lookup costs about what Feast's own ``get_online_features`` does.

``feature_store.yaml`` places the registry and the online store under ``${KAIZEN_HOME}``
and ``data_sources.py`` places the sources there, both read when Feast loads the repo; the
functions here take ``kaizen_home`` explicitly and set the variable only while loading.
Loading changes the working directory for a moment (as ``feast apply`` does), so it is not
meant for concurrent threads.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from kaizen.data.columns import (
    AMOUNT,
    CUSTOMER_ID,
    EVENT_TIMESTAMP,
    LABEL,
    LABEL_TIMESTAMP,
    MERCHANT_ID,
    TRANSACTION_ID,
)
from kaizen.features import generations

if TYPE_CHECKING:
    from feast import FeatureStore

DEFAULT_FEATURE_SERVICE = "fraud_model_v1"
FEATURE_STORE_YAML = "feature_store.yaml"
# The folder of the feature sources (see feature_repo/data_sources.py); with another
# configuration, the link that names the live generation (kaizen.features.build).
DATA_URI_VARIABLE = "KAIZEN_FEAST_DATA_URI"
# Request-time field of the on-demand view: the scored transaction's own time.
TRANSACTION_TIME = "transaction_time"
# Each label event's position, carried through Feast's join to restore the caller's order.
_ROW = "_kaizen_row"

LABEL_EVENT_COLUMNS: tuple[str, ...] = (
    TRANSACTION_ID,
    CUSTOMER_ID,
    MERCHANT_ID,
    AMOUNT,
    EVENT_TIMESTAMP,
    LABEL,
)
ONLINE_REQUEST_FIELDS: tuple[str, ...] = (CUSTOMER_ID, MERCHANT_ID, AMOUNT, EVENT_TIMESTAMP)
_LOG = logging.getLogger(__name__)
_APPLY_SUMMARY = re.compile(r"^(Created|Updated|Deleted|No changes)\b")
_UNSET_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
# One online store per (repo, home) in a serving process; see shared_feature_store.
_SHARED_STORES: dict[tuple[Path, Path, Path | None], FeatureStore] = {}
_SHARED_STORES_LOCK = threading.Lock()
# Serializes online lookups in this process; see OnlineFeatureReader._lookup.
_LOOKUP_LOCK = threading.Lock()


class FeatureRepoError(RuntimeError):
    """The feature repository is missing, invalid, or cannot be applied."""


def feature_data_dir(kaizen_home: str | os.PathLike[str]) -> Path:
    """The live generation's parquet sources: where ``$KAIZEN_HOME/feast/data/current`` points.

    Raises:
        FeatureRepoError: no feature build was committed under ``kaizen_home`` yet.
    """
    folder = generations.current_generation(kaizen_home)
    if folder is None:
        raise FeatureRepoError(
            f"no feature build has been committed under {generations.data_root(kaizen_home)} "
            "yet (no 'current' link); run the pipeline's feature step first"
        )
    return folder


def is_feature_repo(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a Feast repository (a folder with ``feature_store.yaml``)."""
    return (Path(path) / FEATURE_STORE_YAML).is_file()


def is_applied(
    kaizen_home: str | os.PathLike[str],
    *,
    repo_path: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
) -> bool:
    """True once the repository was applied.

    With the repo's own configuration: its registry exists where
    ``feature_repo/feature_store.yaml`` puts it (``$KAIZEN_HOME/feast/registry.db``). With
    another ``config`` (``KAIZEN_FEAST_CONFIG``, a registry elsewhere): the store opens and
    its registry holds feature views.
    """
    if repo_path is None or _config_file(_absolute(repo_path), config) is None:
        return (generations.feast_dir(kaizen_home) / generations.REGISTRY_FILE).is_file()
    try:
        return bool(load_feature_store(repo_path, kaizen_home, config=config).list_feature_views())
    except Exception:  # unreachable registry, missing variables: not usable, so not applied
        _LOG.debug("feature store with %s is not applied", config, exc_info=True)
        return False


def load_feature_store(
    repo_path: str | os.PathLike[str],
    kaizen_home: str | os.PathLike[str],
    *,
    config: str | os.PathLike[str] | None = None,
) -> FeatureStore:
    """Open an applied feature repo without changing its registry (for serving and reads).

    Args:
        repo_path: The Feast repo (``feature_repo/``).
        kaizen_home: Home of the registry, online store and sources.
        config: A ``feature_store.yaml`` to use instead of the repo's own
            (``KAIZEN_FEAST_CONFIG``, e.g. ``feature_repo/envs/cluster/feature_store.yaml``).

    Returns:
        A ``feast.FeatureStore`` on ``$KAIZEN_HOME/feast``, or on what ``config`` names.

    Raises:
        FeatureRepoError: naming the path and the problem.
    """
    repo, home = _check_repo(repo_path), _absolute(kaizen_home)
    config_file = _config_file(repo, config)
    if config_file is None:
        # Finish a feature build's interrupted commit, so serving never starts on half of one.
        generations.recover(home)
    with _kaizen_home_env(home):
        return _open_store(repo, home, config_file)


def apply_feature_repo(
    repo_path: str | os.PathLike[str],
    kaizen_home: str | os.PathLike[str],
    *,
    sources: str | os.PathLike[str] | None = None,
    publish_online_store_as: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
) -> FeatureStore:
    """Register the repo's definitions, like ``feast apply`` run in ``repo_path``.

    Runs Feast's own apply path (the one behind the CLI, reached through
    :mod:`kaizen.features.feast_adapter`), so a re-run with unchanged definitions changes
    nothing, and definitions removed from the repo are removed from the registry. Like
    ``feast apply``, it changes the registry and online store of ``kaizen_home`` in place; a
    feature build applies to a staged copy instead (:mod:`kaizen.features.generations`).

    Args:
        repo_path: The Feast repo (``feature_repo/``).
        kaizen_home: Home of the registry, online store and sources; created if missing.
        sources: The folder of the parquet sources the registry should record
            (``KAIZEN_FEAST_DATA_URI`` while the definitions load); by default
            ``feature_repo/data_sources.py`` decides (the live generation).
        publish_online_store_as: For a staged copy: the live online store file the
            registry should name once applied (the staged one is named while applying).
        config: A ``feature_store.yaml`` to use instead of the repo's own (see
            :func:`load_feature_store`).

    Returns:
        The ``feast.FeatureStore`` whose registry now holds the definitions.

    Raises:
        FeatureRepoError: naming the path and the problem (missing repo or
            ``feature_store.yaml``, invalid configuration, definitions that fail to load
            or to apply).
        UnsupportedLibraryVersionError: the installed Feast is not a version
            :mod:`kaizen.features.feast_adapter` was written for.
    """
    from kaizen.features import feast_adapter

    repo, home = _check_repo(repo_path), _absolute(kaizen_home)
    config_file = _config_file(repo, config)
    (home / "feast").mkdir(parents=True, exist_ok=True)
    # Feast prints every changed object in full (a changed source path prints its whole
    # view); keep one line per change.
    printed = io.StringIO()
    with _kaizen_home_env(home, sources), contextlib.redirect_stdout(printed):
        store = _open_store(repo, home, config_file)
        feast_adapter.record_online_store_path(store)
        feast_adapter.apply_repo(store, repo)
        if publish_online_store_as is not None:
            feast_adapter.record_online_store_path(store, Path(publish_online_store_as))
    for line in printed.getvalue().splitlines():
        if _APPLY_SUMMARY.match(line):
            _LOG.info("feast apply: %s", line.strip())
    return store


def materialize(store: FeatureStore, end_date: datetime) -> tuple[datetime, datetime]:
    """Load the latest feature rows up to ``end_date`` into the online store.

    Every view is loaded over ``[end_date - longest TTL, end_date]`` rather than from its
    last materialization, so a re-run over recomputed sources rewrites the same state
    instead of skipping rows it believes are loaded. Each customer's latest row sits at
    ``FeatureTables.materialize_until`` and each merchant's within a day of it, so the
    interval takes in every entity.

    Args:
        store: An applied feature store.
        end_date: Timezone-aware end of the interval, usually the feature tables' ``as_of``
            plus ``FEATURE_AVAILABILITY_DELAY``.

    Returns:
        The materialized interval ``(start, end)``.

    Raises:
        ValueError: if ``end_date`` is naive.
        FeatureRepoError: if the store has no feature views.
    """
    batched = batched_materialization(store, end_date)
    if batched is not None:
        interval, load = batched
        load()
        return interval
    start, _ = _materialization_interval(store, end_date)
    from kaizen.features import feast_adapter

    with feast_adapter.own_duckdb(store):
        store.materialize(start_date=start, end_date=end_date)
    return start, end_date


def batched_materialization(
    store: FeatureStore, end_date: datetime
) -> tuple[tuple[datetime, datetime], Callable[[], int]] | None:
    """:func:`materialize`'s interval and a call that loads it in one batched write, or None
    where Feast's own materialize must load it (:mod:`kaizen.features.online_load` says
    which stores and views the batched load writes exactly as Feast would).

    The call touches neither the registry nor the store's connections, so it may run in a
    thread beside a retrieval from the same store; it returns the rows written.

    Raises:
        ValueError: if ``end_date`` is naive.
        FeatureRepoError: if the store has no feature views.
    """
    from kaizen.features import online_load

    start, views = _materialization_interval(store, end_date)
    online = [view for view in views if view.online]
    if online_load.supported(store, online) is not None:
        return None
    return (start, end_date), lambda: online_load.load_latest_rows(store, online, start, end_date)


def _materialization_interval(
    store: FeatureStore, end_date: datetime
) -> tuple[datetime, list[Any]]:
    """The interval's start and the store's feature views (see :func:`materialize`)."""
    if end_date.tzinfo is None:
        raise ValueError(f"materialize: end_date must be timezone-aware (UTC), got {end_date!r}")
    views = store.list_feature_views()
    if not views:
        raise FeatureRepoError(
            f"materialize: project {store.project!r} has no feature views; apply the repo first"
        )
    longest = max((view.ttl or timedelta(0) for view in views), default=timedelta(0))
    return end_date - (longest if longest > timedelta(0) else timedelta(days=365)), views


def feature_names(store: FeatureStore, service: str = DEFAULT_FEATURE_SERVICE) -> list[str]:
    """Model inputs of a feature service, in service order, as full names ``view__feature``.

    Args:
        store: An applied feature store.
        service: Feature service name.

    Returns:
        The names, in the order the columns appear in training frames and online responses.

    Raises:
        FeatureRepoError: if the service does not exist (listing the ones that do).
    """
    return _service_feature_names(_feature_service(store, service))


def feature_view_names(store: FeatureStore, service: str = DEFAULT_FEATURE_SERVICE) -> list[str]:
    """Names of the views (stored and on-demand) a feature service reads, in service order.

    Args:
        store: An applied feature store.
        service: Feature service name.

    Returns:
        The view names.

    Raises:
        FeatureRepoError: if the service does not exist.
    """
    return [
        projection.name for projection in _feature_service(store, service).feature_view_projections
    ]


def _stored_feature_names(store: FeatureStore, service: str) -> list[str]:
    """Names of the service's features that come from materialized (not on-demand) views."""
    stored_views = {view.name for view in store.list_feature_views()}
    return _service_feature_names(_feature_service(store, service), stored_views)


def _service_feature_names(service: Any, views: set[str] | None = None) -> list[str]:
    """Full names ``view__feature`` of a ``FeatureService``, in service order.

    Args:
        service: The resolved ``feast.FeatureService``.
        views: Only the features of these views; every view when None.
    """
    return [
        f"{projection.name_to_use()}__{feature.name}"
        for projection in service.feature_view_projections
        if views is None or projection.name in views
        for feature in projection.features
    ]


def build_training_frame(
    store: FeatureStore,
    label_events: pd.DataFrame,
    feature_service: str = DEFAULT_FEATURE_SERVICE,
    *,
    validated: bool = False,
) -> pd.DataFrame:
    """Join point-in-time features onto label events with ``get_historical_features``.

    Args:
        store: An applied feature store whose sources are written.
        label_events: One row per labelled transaction with ``transaction_id`` (unique),
            ``customer_id``, ``merchant_id``, ``amount``, ``event_timestamp`` (UTC) and
            ``is_fraud``; ``label_timestamp`` is kept when present.
        feature_service: The feature service to retrieve.
        validated: The caller checked the events already (``build_features`` validates the
            transactions they come from): the columns, keys and timestamps are not checked
            again.

    Returns:
        One row per label event, in input order: the key columns, ``event_timestamp``,
        ``is_fraud`` (and ``label_timestamp``), then ``feature_names(store, service)`` as
        float64 with missing values filled as described in the module docstring.

    Raises:
        ValueError: if ``label_events`` lacks a column, has duplicate or missing keys,
            naive timestamps, or a feature comes back undefined.
        FeatureRepoError: if the feature service does not exist.
    """
    if not validated:
        _validate_label_events(label_events)
    service = _feature_service(store, feature_service)
    names = feature_names(store, feature_service)
    passthrough = [LABEL_TIMESTAMP] if LABEL_TIMESTAMP in label_events.columns else []
    events = label_events[[*LABEL_EVENT_COLUMNS, *passthrough]].reset_index(drop=True)
    # Only what the join and the on-demand view read go through Feast; the rest stays here.
    entity_df = events[[CUSTOMER_ID, MERCHANT_ID, AMOUNT, EVENT_TIMESTAMP]].assign(
        **{TRANSACTION_TIME: events[EVENT_TIMESTAMP], _ROW: np.arange(len(events))}
    )
    rounds = (
        _retrieval_rounds(entity_df, _join_keys(store, feature_service))
        if store.config.offline_store.type == "file"
        else [entity_df.index]
    )
    from kaizen.features import feast_adapter

    with feast_adapter.own_duckdb(store):
        # Arrow, not pandas: the features go straight into one float64 matrix, and DuckDB's
        # memory is given back when the block ends, before the frame is assembled.
        retrieved = pa.concat_tables(
            store.get_historical_features(
                entity_df=entity_df.iloc[rows], features=service, full_feature_names=True
            ).to_arrow()
            for rows in rounds
        )
    del entity_df
    # Feast returns rows in its own join order; each goes back to its caller's position.
    positions = retrieved.column(_ROW).to_numpy()
    found = np.zeros(len(events), dtype=bool)
    found[positions] = True
    if not found.all() or len(positions) != len(events):
        lost = events[TRANSACTION_ID][~found]
        raise FeatureRepoError(
            f"Feast returned {len(positions)} rows for {len(events)} label event(s)"
            + (f"; none for {len(lost)}, first {lost.iloc[0]!r}" if len(lost) else "")
            + ": Feast drops an event whose entity has feature rows but none at or before the "
            "event within the TTL; were the feature sources computed from these transactions?"
        )
    absent = [name for name in names if name not in retrieved.column_names]
    if absent:
        raise FeatureRepoError(f"Feast returned no column(s) {absent}")
    values = np.empty((len(events), len(names)), dtype=np.float64)
    for index, name in enumerate(names):
        values[positions, index] = _arrow_floats(retrieved.column(name))
    del retrieved
    _fill_stored(
        values,
        names,
        _stored_mask(names, _stored_feature_names(store, feature_service)),
        lambda row: events[TRANSACTION_ID].iloc[row],
    )
    columns = [TRANSACTION_ID, CUSTOMER_ID, MERCHANT_ID, EVENT_TIMESTAMP, LABEL, *passthrough]
    frame = pd.concat(
        [events[columns], pd.DataFrame(values, columns=names, copy=False)], axis=1, copy=False
    )
    frame[LABEL] = frame[LABEL].astype("int64")
    return frame


def _arrow_floats(column: pa.ChunkedArray) -> np.ndarray:
    """float64 values of an Arrow column, nulls and non-numbers NaN (as
    ``pd.to_numeric(errors="coerce")`` reads them)."""
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False))
    return pd.to_numeric(column.to_pandas(), errors="coerce").to_numpy(dtype=np.float64)


def _stored_mask(names: Sequence[str], stored: Sequence[str]) -> np.ndarray:
    """Which of ``names`` come from stored (materialized) views."""
    kept = set(stored)
    return np.array([name in kept for name in names], dtype=bool)


def _fill_stored(
    values: np.ndarray, names: Sequence[str], stored: np.ndarray, row: Callable[[int], object]
) -> np.ndarray:
    """Fill missing stored features with 0 in place; refuse missing on-demand ones.

    Stored (windowed) features may be missing: "no activity". The on-demand ones are computed
    from them and the request, so a gap there is a defect.

    Args:
        values: ``[rows, len(names)]`` float64, NaN where a value is missing.
        names: The features, in column order.
        stored: Which columns come from stored views.
        row: Names a row in the error, from its index.

    Raises:
        ValueError: naming the feature, how many rows lack it and the first.
    """
    part = values[:, stored]
    part[np.isnan(part)] = 0.0
    values[:, stored] = part
    undefined = np.isnan(values)
    if undefined.any():
        column = int(undefined.any(axis=0).argmax())
        first = int(undefined[:, column].argmax())
        raise ValueError(
            f"feature {names[column]!r} is undefined for "
            f"{int(undefined[:, column].sum())} row(s), first {row(first)!r}"
        )
    return values


def online_features(
    store: FeatureStore,
    rows: Sequence[Mapping[str, Any]],
    feature_service: str = DEFAULT_FEATURE_SERVICE,
) -> pd.DataFrame:
    """Features for live transactions from the online store, exactly as training saw them.

    Resolves the feature service on every call; a caller that looks up features repeatedly
    (a server) should hold an :class:`OnlineFeatureReader` instead.

    Args:
        store: An applied, materialized feature store.
        rows: One mapping per transaction with ``customer_id``, ``merchant_id``, ``amount``
            and ``event_timestamp`` (a timezone-aware datetime); other keys are ignored.
        feature_service: The feature service to retrieve.

    Returns:
        One row per input row, in order: ``customer_id``, ``merchant_id`` and
        ``feature_names(store, service)`` as float64.

    Raises:
        ValueError: naming the row and field that is missing or malformed.
        FeatureRepoError: if the feature service does not exist.
    """
    return OnlineFeatureReader(store, feature_service).frame(rows)


class OnlineFeatureReader:
    """Online lookups through one feature service, with everything fixed resolved once.

    Creating a reader looks up the feature service, its full feature names, which of them
    come from stored views (filled with 0 when missing) and its on-demand views. Each lookup
    is then one ``get_online_features`` call for the stored features (those the service
    reads and those its on-demand views read), after which the on-demand views' own
    transformations, the functions Feast stored in its registry at apply time, run here on
    the same inputs Feast would give them: the join keys, the request fields and the source
    features under both their full and short names, with the dtypes Feast's Arrow table
    gives pandas. Feast spends most of a single-row lookup converting between protobuf,
    Arrow and pandas around that call (2.9 of 3.3 ms measured); the values are the same to
    the bit, which tests/unit/features/test_online_reader.py checks against Feast's own
    ``get_online_features`` with the service. The Feast internals this takes (the stored
    function, and the inputs Feast gives it) are in :mod:`kaizen.features.feast_adapter`.

    A service this cannot reproduce exactly (an on-demand view in python or substrait mode,
    with aggregations or written to the online store, one reading another on-demand view,
    or a projection renamed with ``with_name`` or ``with_join_key_map``) is read with one
    ``get_online_features`` call for the whole service instead; :attr:`in_process` says
    which. Values and errors are those of :func:`online_features`, which is built on this
    class.

    Names, fill rules and on-demand transformations are the service's when the reader was
    created: a server makes one per model it loads. Feast finds the stored views by name in
    its (cached) registry on each lookup, so if the repo is re-applied without one of these
    features, lookups fail with a FeatureRepoError naming it instead of answering a
    different feature set.

    Readers may be called from several threads; their lookups run one at a time, which
    costs less CPU than letting them compete for the GIL.

    Args:
        store: An applied, materialized feature store.
        feature_service: The feature service to retrieve.

    Raises:
        FeatureRepoError: if the feature service does not exist.
        UnsupportedLibraryVersionError: the installed Feast is not a version
            :mod:`kaizen.features.feast_adapter` was written for.
    """

    def __init__(self, store: FeatureStore, feature_service: str = DEFAULT_FEATURE_SERVICE):
        from kaizen.features import feast_adapter

        service = _feature_service(store, feature_service)
        views = {view.name: view for view in store.list_feature_views()}
        self.store = store
        self.feature_service = feature_service
        self.names: tuple[str, ...] = tuple(_service_feature_names(service))
        self.stored_names: tuple[str, ...] = tuple(_service_feature_names(service, set(views)))
        self._service = service
        self._positions = {name: position for position, name in enumerate(self.names)}
        self._stored_mask = _stored_mask(self.names, self.stored_names)
        self._plan = feast_adapter.in_process_plan(store, service, views)

    @property
    def in_process(self) -> bool:
        """Whether on-demand features are computed here (True) or inside Feast's call."""
        return self._plan is not None

    def matrix(
        self, rows: Sequence[Mapping[str, Any]], features: Sequence[str] | None = None
    ) -> np.ndarray:
        """The features of ``rows`` as a float64 matrix.

        Args:
            rows: As for :func:`online_features`.
            features: Columns to return, in this order; the service's names when None.

        Returns:
            Shape ``[len(rows), len(features)]``, filled as in training.

        Raises:
            ValueError: naming the row and field that is missing or malformed, or the
                on-demand feature that is undefined for a row.
            FeatureRepoError: if Feast's answer lacks a feature of the service, or
                ``features`` names one the service does not provide.
        """
        values = self._lookup(_online_requests(rows))
        if features is None:
            return values
        try:
            columns = [self._positions[name] for name in features]
        except KeyError as error:
            raise FeatureRepoError(
                f"feature service {self.feature_service!r} does not provide {error.args[0]!r}"
            ) from None
        return values[:, columns]

    def frame(self, rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        """The features of ``rows`` as :func:`online_features` returns them.

        Args:
            rows: As for :func:`online_features`.

        Returns:
            ``customer_id``, ``merchant_id`` and the service's names as float64 columns.

        Raises:
            ValueError: as :meth:`matrix`.
            FeatureRepoError: as :meth:`matrix`.
        """
        requests = _online_requests(rows)
        values = self._lookup(requests)
        keys = pd.DataFrame(
            {column: [r[column] for r in requests] for column in (CUSTOMER_ID, MERCHANT_ID)}
        )
        return pd.concat([keys, pd.DataFrame(values, columns=list(self.names))], axis=1)

    def _lookup(self, requests: list[dict[str, Any]]) -> np.ndarray:
        # Feast's lookup is CPU-bound Python that holds the GIL; lookups in several threads
        # at once only slow each other down (measured: 3.4 ms of CPU per single-row lookup
        # alone, 6.8 ms with six threads at once), so the process runs one at a time.
        with _LOOKUP_LOCK:
            if self._plan is None:
                answer = self.store.get_online_features(
                    features=self._service, entity_rows=requests, full_feature_names=True
                ).to_dict()
            else:
                answer = self._plan.lookup(self.store, requests)
        absent = [name for name in self.names if name not in answer]
        if absent:
            raise FeatureRepoError(f"Feast returned no column(s) {absent}")
        values = _float_columns([answer[name] for name in self.names], len(requests))
        return _fill_stored(values, self.names, self._stored_mask, lambda row: f"row {row}")


def shared_feature_store(
    repo_path: str | os.PathLike[str],
    kaizen_home: str | os.PathLike[str],
    *,
    config: str | os.PathLike[str] | None = None,
) -> FeatureStore:
    """The process's one feature store for ``repo_path`` and ``kaizen_home``, for serving.

    Opened by :func:`load_feature_store` on first use, then shared by every caller with the
    same repo and home. Feast keeps the resolved request context of each feature service in
    a process-wide cache that it clears whenever a lookup comes from a different registry
    object than the last one, so the readers of two stores used in turn (a champion's and a
    challenger's) would pay a full resolution (about 6 ms) on every switch.

    Args:
        repo_path: The Feast repo (``feature_repo/``).
        kaizen_home: Home of the registry, online store and sources.
        config: A ``feature_store.yaml`` to use instead of the repo's own.

    Returns:
        The shared ``feast.FeatureStore``.

    Raises:
        FeatureRepoError: naming the path and the problem.
    """
    key = (
        _absolute(repo_path).resolve(),
        _absolute(kaizen_home).resolve(),
        None if config is None else _absolute(config).resolve(),
    )
    with _SHARED_STORES_LOCK:
        store = _SHARED_STORES.get(key)
        if store is None:
            store = load_feature_store(repo_path, kaizen_home, config=config)
            _SHARED_STORES[key] = store
    return store


def _online_requests(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Feast entity rows (keys and request fields) for ``rows``, validated."""
    if not rows:
        raise ValueError("online_features: no rows given")
    requests = []
    for index, row in enumerate(rows):
        missing = [field for field in ONLINE_REQUEST_FIELDS if row.get(field) is None]
        if missing:
            raise ValueError(
                f"online_features: row {index} is missing {missing}; "
                f"each row needs {list(ONLINE_REQUEST_FIELDS)}"
            )
        timestamp = pd.Timestamp(row[EVENT_TIMESTAMP])
        if timestamp.tzinfo is None:
            raise ValueError(
                f"online_features: row {index}: {EVENT_TIMESTAMP} must be timezone-aware "
                f"(UTC), got {row[EVENT_TIMESTAMP]!r}"
            )
        try:
            amount = float(row[AMOUNT])
        except (TypeError, ValueError):
            raise ValueError(
                f"online_features: row {index}: {AMOUNT} must be a number, got {row[AMOUNT]!r}"
            ) from None
        requests.append(
            {
                CUSTOMER_ID: str(row[CUSTOMER_ID]),
                MERCHANT_ID: str(row[MERCHANT_ID]),
                AMOUNT: amount,
                TRANSACTION_TIME: timestamp.tz_convert("UTC").to_pydatetime(),
            }
        )
    return requests


def _float_columns(columns: list[list[Any]], count: int) -> np.ndarray:
    """``[count, len(columns)]`` float64 from Feast's value lists; None and non-numbers NaN.

    The same values ``pd.to_numeric(errors="coerce")`` gives; numpy converts the usual
    all-numeric answer in one step.
    """
    try:
        values = np.array(columns, dtype=np.float64).T
    except (TypeError, ValueError):
        values = np.column_stack(
            [pd.to_numeric(pd.Series(column, dtype=object), errors="coerce") for column in columns]
        ).astype(np.float64)
    return values.reshape(count, len(columns)).copy()


def _join_keys(store: FeatureStore, service: str) -> list[str]:
    views = {view.name: view for view in store.list_feature_views()}
    keys: list[str] = []
    for projection in _feature_service(store, service).feature_view_projections:
        view = views.get(projection.name)
        if view is None:
            continue
        for column in view.entity_columns:
            key = projection.join_key_map.get(column.name, column.name)
            if key not in keys:
                keys.append(key)
    return keys


def _retrieval_rounds(entity_df: pd.DataFrame, join_keys: list[str]) -> list[pd.Index]:
    """Split label events so no round repeats a (join key, timestamp) pair (file store only).

    The file offline store de-duplicates its join result on each view's join keys plus the
    event timestamp, so two events of one customer at the same instant (at different
    merchants, say) would come back as one. Each round keeps at most one event per pair. The
    DuckDB store (the default) gives every entity row its own result, so it needs one round.
    """
    rounds = []
    remaining = entity_df
    while not remaining.empty:
        first = pd.Series(True, index=remaining.index)
        for key in join_keys:
            first &= ~remaining.duplicated([key, EVENT_TIMESTAMP])
        rounds.append(pd.Index(entity_df.index.get_indexer(remaining.index[first])))
        remaining = remaining[~first]
    return rounds


def _validate_label_events(events: pd.DataFrame) -> None:
    missing = [column for column in LABEL_EVENT_COLUMNS if column not in events.columns]
    if missing:
        raise ValueError(
            f"label events: missing column(s) {missing}; expected {list(LABEL_EVENT_COLUMNS)}, "
            f"got {list(events.columns)}"
        )
    if events.empty:
        raise ValueError("label events: the frame has no rows")
    for column in LABEL_EVENT_COLUMNS:
        nulls = events[column].isna()
        if nulls.any():
            raise ValueError(
                f"label events: column {column!r} has {int(nulls.sum())} missing value(s), "
                f"first at row {nulls.to_numpy().argmax()}"
            )
    if not isinstance(events[EVENT_TIMESTAMP].dtype, pd.DatetimeTZDtype):
        raise ValueError(
            f"label events: {EVENT_TIMESTAMP!r} must hold timezone-aware UTC timestamps, "
            f"got dtype {events[EVENT_TIMESTAMP].dtype}"
        )
    duplicated = events[TRANSACTION_ID].duplicated()
    if duplicated.any():
        raise ValueError(
            f"label events: {TRANSACTION_ID!r} must be unique, "
            f"{events[TRANSACTION_ID][duplicated].iloc[0]!r} appears more than once"
        )


def _feature_service(store: FeatureStore, name: str) -> Any:
    from feast.errors import FeatureServiceNotFoundException

    try:
        return store.get_feature_service(name)
    except FeatureServiceNotFoundException:
        known = sorted(service.name for service in store.list_feature_services())
        raise FeatureRepoError(
            f"feature service {name!r} is not in project {store.project!r}; known: {known}"
        ) from None


def _check_repo(repo_path: str | os.PathLike[str]) -> Path:
    repo = _absolute(repo_path)
    if not repo.is_dir():
        raise FeatureRepoError(f"feature repo {repo} does not exist or is not a directory")
    config = repo / FEATURE_STORE_YAML
    if not config.is_file():
        raise FeatureRepoError(f"feature repo {repo} has no {FEATURE_STORE_YAML} ({config})")
    return repo


def config_file_of(
    repo_path: str | os.PathLike[str], config: str | os.PathLike[str] | None
) -> Path | None:
    """``config`` as an absolute file, or None when it is the repo's own ``feature_store.yaml``
    (the embedded default, whose builds are staged and committed under ``KAIZEN_HOME``).

    Raises:
        FeatureRepoError: if the repo or the file does not exist.
    """
    return _config_file(_check_repo(repo_path), config)


def _config_file(repo: Path, config: str | os.PathLike[str] | None) -> Path | None:
    """``config`` as an absolute file, or None when it is the repo's own configuration."""
    if config is None or str(config).strip() == "":
        return None
    path = _absolute(config)
    if path.resolve() == (repo / FEATURE_STORE_YAML).resolve():
        return None
    if not path.is_file():
        raise FeatureRepoError(
            f"feature store configuration {path} (KAIZEN_FEAST_CONFIG) does not exist or is not "
            "a file"
        )
    return path


def _open_store(repo: Path, home: Path, config_file: Path | None = None) -> FeatureStore:
    import yaml
    from feast import FeatureStore

    config = config_file or repo / FEATURE_STORE_YAML
    try:
        # Feast expands variables the same way; an unset one would stay literal text and
        # become a directory named "${...}".
        loaded = yaml.safe_load(os.path.expandvars(config.read_text()))
    except yaml.YAMLError as error:
        raise FeatureRepoError(f"{config} is not valid YAML: {error}") from error
    unset = sorted(set(_unset_variables(loaded)))
    if unset:
        raise FeatureRepoError(f"{config} uses environment variable(s) {unset}, which are not set")
    try:
        return FeatureStore(repo_path=str(repo), fs_yaml_file=config)
    except Exception as error:
        raise FeatureRepoError(
            f"{config} is invalid (KAIZEN_HOME={home}): {type(error).__name__}: {error}"
        ) from error


def _unset_variables(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield from (match.group(1) for match in _UNSET_VARIABLE.finditer(value))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _unset_variables(item)
    elif isinstance(value, list):
        for item in value:
            yield from _unset_variables(item)


def _absolute(path: str | os.PathLike[str]) -> Path:
    return Path(path).expanduser().absolute()


@contextlib.contextmanager
def _kaizen_home_env(home: Path, sources: str | os.PathLike[str] | None = None) -> Iterator[None]:
    values = {"KAIZEN_HOME": str(home)}
    if sources is not None:
        values[DATA_URI_VARIABLE] = Path(sources).as_posix()
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
