"""One call from raw transactions to point-in-time train/validation/test frames."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from kaizen.data.columns import EVENT_TIMESTAMP, LABEL
from kaizen.features import generations
from kaizen.features.split import (
    DEFAULT_TEST_DAYS,
    DEFAULT_VALIDATION_DAYS,
    DEFAULT_WARMUP_DAYS,
    SplitWindows,
    check_windows_have_rows,
    split_by_windows,
    split_windows,
)
from kaizen.features.store import (
    DATA_URI_VARIABLE,
    DEFAULT_FEATURE_SERVICE,
    FeatureRepoError,
    apply_feature_repo,
    batched_materialization,
    build_training_frame,
    config_file_of,
    feature_names,
    feature_view_names,
    load_feature_store,
    materialize,
)
from kaizen.features.tables import (
    FeatureTables,
    _compute_feature_tables,
    validate_transactions,
    write_feature_sources,
)

if TYPE_CHECKING:
    from feast import FeatureStore


@dataclass(frozen=True)
class FeatureBuildResult:
    """Everything the training step needs, and what to record about how it was made.

    Attributes:
        train: Training rows (after the warm-up), sorted by time.
        validation: Validation rows, sorted by time.
        test: Test rows (the latest days), sorted by time.
        feature_names: Model inputs in column order (``view__feature``).
        feature_service: The Feast feature service the frames were retrieved with.
        feature_views: Views of that service, in service order.
        windows: The warm-up/train/validation/test time windows.
        as_of: The time the feature tables describe the data up to.
        materialized: The ``(start, end)`` interval loaded into the online store.
        source_paths: Table name to the parquet file written for it.
        row_counts: Rows of the input and of each table and split.
        seconds: Wall time of each part: ``tables`` (computed), ``sources`` (written and
            the repo applied), ``materialize`` (the online store loaded, usually in a
            thread beside the retrieval, so the two overlap), ``retrieve`` (training rows
            retrieved and split) and ``commit``.
    """

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    feature_names: list[str]
    feature_service: str
    feature_views: list[str]
    windows: SplitWindows
    as_of: pd.Timestamp
    materialized: tuple[datetime, datetime]
    source_paths: dict[str, Path]
    row_counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        """JSON-ready description of the build: what training needs and what to record.

        Keys: ``feature_service``, ``feature_views``, ``feature_names`` (ordered model
        inputs), ``windows``, ``as_of``, ``materialized``, ``source_paths``, ``rows``
        (``transactions``, ``customer_stats``, ``merchant_stats``, ``warmup``, ``train``,
        ``validation``, ``test``) and ``seconds`` (see the attribute).
        """
        return {
            "feature_service": self.feature_service,
            "feature_views": list(self.feature_views),
            "feature_names": list(self.feature_names),
            "windows": self.windows.to_dict(),
            "as_of": self.as_of.isoformat(),
            "materialized": {
                "start": self.materialized[0].isoformat(),
                "end": self.materialized[1].isoformat(),
            },
            "source_paths": {name: str(path) for name, path in self.source_paths.items()},
            "rows": dict(self.row_counts),
            "seconds": dict(self.seconds),
        }


def build_features(
    transactions: pd.DataFrame,
    repo_path: str | os.PathLike[str],
    kaizen_home: str | os.PathLike[str],
    validation_days: int = DEFAULT_VALIDATION_DAYS,
    test_days: int = DEFAULT_TEST_DAYS,
    warmup_days: int = DEFAULT_WARMUP_DAYS,
    feature_service: str = DEFAULT_FEATURE_SERVICE,
    source: str | None = None,
    config: str | os.PathLike[str] | None = None,
) -> FeatureBuildResult:
    """Compute the feature tables, then write, apply, materialize, retrieve and split.

    Everything after the tables happens in a staged copy of the home's Feast state and is
    published in one commit only once the training frames are split
    (:mod:`kaizen.features.generations`): a build that fails or is killed leaves the
    sources, the registry and the online store that serving reads as they were.

    With another configuration (``config``: a registry and online store that are not files
    under the home, such as S3 and Redis), the sources go to a new generation beside the
    link ``KAIZEN_FEAST_DATA_URI`` names, the training rows come from a scratch registry,
    and only then are the registry applied and the online store materialized
    (:func:`_published_elsewhere`).

    Args:
        transactions: Raw transactions (``kaizen.data.columns.RAW_COLUMNS``); every one is a
            label event.
        repo_path: The Feast repo (``feature_repo/``).
        kaizen_home: Home of the registry, online store and parquet sources.
        validation_days: Length of the validation window in days.
        test_days: Length of the test window (the latest days).
        warmup_days: Days at the start whose transactions train nothing (their 7-day
            windows are incomplete); they still count in later rows' features.
        feature_service: The feature service to retrieve.
        source: The file the transactions came from, named in every data error.
        config: A ``feature_store.yaml`` to use instead of the repo's own
            (``KAIZEN_FEAST_CONFIG``).

    Returns:
        The split frames with their feature names and the build's metadata.

    Raises:
        ValueError: on malformed transactions or windows that do not fit the data.
        kaizen.features.FeatureRepoError: if the repo is missing, invalid or cannot be applied.
    """
    try:
        validate_transactions(transactions)
        # Windows first: data too short to split, or a window without a transaction or with
        # one class only, fails before anything is written (sources, registry, online store).
        windows = split_windows(
            transactions[EVENT_TIMESTAMP], validation_days, test_days, warmup_days
        )
        check_windows_have_rows(
            transactions[EVENT_TIMESTAMP],
            windows,
            validation_days=validation_days,
            test_days=test_days,
            warmup_days=warmup_days,
            labels=transactions[LABEL],
        )
    except ValueError as error:
        if source is None:
            raise
        raise ValueError(f"transactions from {source}: {error}") from error
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    tables = _compute_feature_tables(transactions)  # validated above
    seconds["tables"] = time.perf_counter() - started
    as_of = tables.as_of
    table_rows = {
        "customer_stats": len(tables.customer_stats),
        "merchant_stats": len(tables.merchant_stats),
    }
    # The generator keeps the tables only until they are written (they are large).
    config_file = config_file_of(repo_path, config)
    staged = (
        _staged_feature_store(tables, repo_path, kaizen_home, seconds)
        if config_file is None
        else _published_elsewhere(tables, repo_path, kaizen_home, config_file, seconds)
    )
    del tables
    with staged as (store, source_paths, loaded):
        started = time.perf_counter()
        # Warm-up events are never used for training, so they are not retrieved at all.
        label_events = transactions[transactions[EVENT_TIMESTAMP] >= windows.train.start]
        frame = build_training_frame(store, label_events, feature_service, validated=True)
        del label_events
        train, validation, test = split_by_windows(frame, windows)
        del frame
        names = feature_names(store, feature_service)
        views = feature_view_names(store, feature_service)
        seconds["retrieve"] = time.perf_counter() - started
    return FeatureBuildResult(
        train=train,
        validation=validation,
        test=test,
        feature_names=names,
        feature_service=feature_service,
        feature_views=views,
        windows=windows,
        as_of=as_of,
        materialized=loaded,
        source_paths=source_paths,
        row_counts={
            "transactions": len(transactions),
            **table_rows,
            "warmup": int(windows.warmup.contains(transactions[EVENT_TIMESTAMP]).sum()),
            "train": len(train),
            "validation": len(validation),
            "test": len(test),
        },
        seconds={name: round(value, 3) for name, value in seconds.items()},
    )


def publish_feature_tables(
    tables: FeatureTables,
    repo_path: str | os.PathLike[str],
    kaizen_home: str | os.PathLike[str],
) -> FeatureStore:
    """Write ``tables`` as a new generation, apply the repo, materialize, and publish them.

    What :func:`build_features` does without retrieving a training set: staged, then
    committed in one step (see :mod:`kaizen.features.generations`).

    Returns:
        The live feature store, opened after the commit.

    Raises:
        kaizen.features.FeatureRepoError: if the repo is missing, invalid or cannot be applied.
    """
    with _staged_feature_store(tables, repo_path, kaizen_home):
        pass
    return load_feature_store(repo_path, kaizen_home)


def _materialization_interval_only(store: FeatureStore, end: datetime) -> tuple[datetime, datetime]:
    """The interval :func:`materialize` loads, without loading it (the scratch store)."""
    batched = batched_materialization(store, end)
    if batched is None:
        raise FeatureRepoError("the scratch feature store is not a local SQLite store")
    return batched[0]


@contextlib.contextmanager
def _staged_feature_store(
    tables: FeatureTables,
    repo_path: str | os.PathLike[str],
    kaizen_home: str | os.PathLike[str],
    seconds: dict[str, float] | None = None,
) -> Iterator[tuple[FeatureStore, dict[str, Path], tuple[datetime, datetime]]]:
    """A staged store with the tables' sources applied, its online store loading; committed
    when the block ends without an error and the load is done, thrown away (live files
    untouched) when either raises.

    Where the batched load applies (:func:`kaizen.features.store.batched_materialization`)
    the online store loads in a thread while the block runs; otherwise Feast's materialize
    runs before the block. ``seconds``, if given, gets the time of ``sources`` (write and
    apply), ``materialize`` (the load, which may overlap the block's time) and ``commit``.
    """
    from kaizen.features import feast_adapter

    timings = seconds if seconds is not None else {}
    with generations.staged_build(kaizen_home) as staged:
        started = time.perf_counter()
        source_paths = write_feature_sources(tables, staged.data_dir)
        end = tables.materialize_until.to_pydatetime()
        del tables
        store = apply_feature_repo(
            repo_path,
            staged.home,
            sources=staged.data_dir,
            publish_online_store_as=generations.feast_dir(kaizen_home)
            / generations.ONLINE_STORE_FILE,
        )
        _check_sources_are_the_written_files(store, source_paths)
        timings["sources"] = time.perf_counter() - started
        batched = batched_materialization(store, end)
        if batched is None:  # Feast's materialize: it writes the registry, so not beside
            started = time.perf_counter()
            loaded = materialize(store, end)
            feast_adapter.forget_materialization_history(store)
            timings["materialize"] = time.perf_counter() - started
            yield store, source_paths, loaded
        else:
            # The online store loads in a thread while the block retrieves the training rows
            # (DuckDB and SQLite work outside the GIL); both end before anything is committed,
            # and the pool's exit waits for the load even when the block raised.
            loaded, load = batched
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="online-load") as pool:
                loading = pool.submit(_timed, load, timings, "materialize")
                yield store, source_paths, loaded
            loading.result()  # its error, if it failed
        started = time.perf_counter()
        generations.commit(staged)
        timings["commit"] = time.perf_counter() - started


def _timed(call: Callable[[], object], timings: dict[str, float], name: str) -> None:
    started = time.perf_counter()
    call()
    timings[name] = time.perf_counter() - started


@contextlib.contextmanager
def _published_elsewhere(
    tables: FeatureTables,
    repo_path: str | os.PathLike[str],
    kaizen_home: str | os.PathLike[str],
    config_file: Path,
    seconds: dict[str, float],
) -> Iterator[tuple[FeatureStore, dict[str, Path], tuple[datetime, datetime]]]:
    """Sources written and applied to a scratch registry for the block's retrieval; the
    configuration's own registry and online store are written only when the block ends
    without an error.

    The sources go to a new generation folder beside the link ``KAIZEN_FEAST_DATA_URI``
    names (a shared volume: every step and a hand-run ``feast`` see the same paths); the
    link is switched after the publish, and generations but the live one and the one
    before are removed. A failed block leaves the registry, the online store and the link
    as they were. Unlike the embedded commit, the publish itself is not atomic: an apply
    that succeeds followed by a materialization that fails leaves the new definitions with
    the old online rows (Redis offers no transaction over a whole materialization); the
    next build repairs it.
    """
    import tempfile

    from kaizen.features import feast_adapter

    link = _data_link()
    generation = generations.new_generation_name()
    folder = link.parent / generation
    end = tables.materialize_until.to_pydatetime()
    started = time.perf_counter()
    try:
        source_paths = write_feature_sources(tables, folder)
        del tables
        with tempfile.TemporaryDirectory(prefix="kaizen-feast-scratch-") as scratch:
            scratch_config = _scratch_config(config_file, Path(scratch))
            store = apply_feature_repo(
                repo_path, Path(scratch) / "home", sources=folder, config=scratch_config
            )
            _check_sources_are_the_written_files(store, source_paths)
            seconds["sources"] = time.perf_counter() - started
            loaded = _materialization_interval_only(store, end)
            yield store, source_paths, loaded
        started = time.perf_counter()
        live = apply_feature_repo(repo_path, kaizen_home, sources=folder, config=config_file)
        materialize(live, end)
        feast_adapter.forget_materialization_history(live)
        seconds["materialize"] = time.perf_counter() - started
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    started = time.perf_counter()
    generations.point_link_at(link, generation)
    generations.remove_old_generations(link)
    seconds["commit"] = time.perf_counter() - started


def _data_link() -> Path:
    """The link ``KAIZEN_FEAST_DATA_URI`` names, on a local (or mounted) filesystem."""
    value = os.environ.get(DATA_URI_VARIABLE, "").strip()
    if not value:
        raise FeatureRepoError(
            f"{DATA_URI_VARIABLE} is not set: with KAIZEN_FEAST_CONFIG, feature builds write "
            "their parquet sources beside the link it names, e.g. "
            "/var/lib/kaizen-shared/feast/data/current on a volume every step mounts"
        )
    if "://" in value:
        raise FeatureRepoError(
            f"{DATA_URI_VARIABLE}={value!r}: feature builds write their sources to a "
            "filesystem path (a mounted volume); writing them to an object store is not "
            "supported yet"
        )
    link = Path(value).expanduser()
    if not link.is_absolute():
        raise FeatureRepoError(f"{DATA_URI_VARIABLE}={value!r} must be an absolute path")
    if link.exists() and not link.is_symlink():
        raise FeatureRepoError(
            f"{DATA_URI_VARIABLE}={value!r} exists and is not a link; feature builds make it "
            "a link to the live generation beside it"
        )
    link.parent.mkdir(parents=True, exist_ok=True)
    return link


def _scratch_config(config_file: Path, scratch: Path) -> Path:
    """``config_file`` with its registry and online store replaced by files in ``scratch``:
    the same project and offline store, for a retrieval that changes nothing live."""
    import yaml

    loaded = yaml.safe_load(os.path.expandvars(config_file.read_text()))
    loaded["registry"] = {
        "registry_type": "file",
        "path": str(scratch / "registry.db"),
        "cache_ttl_seconds": 0,
    }
    loaded["online_store"] = {"type": "sqlite", "path": str(scratch / "online_store.db")}
    target = scratch / "feature_store.yaml"
    target.write_text(yaml.safe_dump(loaded))
    return target


def _check_sources_are_the_written_files(store: FeatureStore, written: dict[str, Path]) -> None:
    """Fail if a view reads files other than the ones just written (an override is set)."""
    paths = {path.as_posix() for path in written.values()}
    for view in store.list_feature_views():
        source = getattr(view.batch_source, "path", None)
        if source not in paths:
            raise FeatureRepoError(
                f"feature view {view.name!r} reads {source}, but the sources were written to "
                f"{sorted(paths)}; the repo's data_sources.py must read its parquet folder from "
                "KAIZEN_FEAST_DATA_URI when that is set"
            )
