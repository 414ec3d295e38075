"""Adapter over the Feast internals that ``kaizen.features.store`` relies on.

Written for feast >=0.67,<0.68 (pyproject.toml pins ``feast~=0.67.0``), checked against
0.67.0. :func:`check_version` refuses any other version; :func:`apply_repo` and
:func:`in_process_plan`, this module's entry points, call it first.

What it uses beyond Feast's documented API, and why:

- **The apply path of the CLI** (``feast.repo_operations.parse_repo`` and
  ``apply_total_with_repo_instance``, ``get_repo_files``): :func:`apply_repo` registers a
  repo exactly as ``feast apply`` does (unchanged definitions change nothing, removed ones
  are removed), without a subprocess. :func:`definitions_importable` reproduces how the CLI
  imports the definition files: each as a top-level module named after its path relative
  to the working directory, with the repo as working directory and on ``sys.path``.
- **The registry's infrastructure objects** (``registry.get_infra``/``update_infra`` and the
  SQLite table's ``path``): :func:`record_online_store_path` makes a staged registry name
  the staged online store while it is applied, and the live one before it is published;
  the registry proto's feature views' ``meta.materialization_intervals`` and
  ``Registry.commit``, for :func:`forget_materialization_history`.
- **The DuckDB offline store's connection** (ibis' default backend, ``ibis.set_backend``):
  :func:`own_duckdb` gives a retrieval a connection of its own with a memory limit.
- **On-demand feature views from the inside**, for :class:`InProcessPlan`: the registered
  pandas function (``OnDemandFeatureView.feature_transformation.udf``), the view's
  ``mode``, ``write_to_online_store``, ``aggregations``,
  ``source_feature_view_projections`` and ``source_request_sources``, and the projections'
  ``name_alias`` and ``join_key_map``. :meth:`InProcessPlan.lookup` calls the function on
  the inputs Feast 0.67 gives it in ``get_online_features`` (the join keys, the request
  fields and the source features under both their full and short names, with the dtypes
  Feast's Arrow table gives pandas), so that an online lookup need not pay for Feast's
  protobuf/Arrow/pandas conversions; tests/unit/features/test_online_reader.py checks the
  values against Feast's own lookup bit for bit.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from packaging.specifiers import SpecifierSet

from kaizen.features.store import FEATURE_STORE_YAML, FeatureRepoError
from kaizen.platform.library_versions import require_version

if TYPE_CHECKING:
    from feast import FeatureStore

LIBRARY = "feast"
SUPPORTED_VERSIONS = SpecifierSet(">=0.67,<0.68")
_USES = (
    "feast.repo_operations (parse_repo, apply_total_with_repo_instance, get_repo_files), "
    "the registry's infra objects (SqliteTable.path) and cached proto (materialization "
    "intervals, commit), "
    "on-demand feature view internals (feature_transformation.udf, source projections and "
    "request sources) and the inputs get_online_features gives a pandas on-demand function"
)


def check_version() -> str:
    """The installed Feast version, if this adapter was written for it.

    Raises:
        UnsupportedLibraryVersionError: naming feast, the installed version and the range.
    """
    return require_version(LIBRARY, SUPPORTED_VERSIONS, __name__, _USES)


def apply_repo(store: FeatureStore, repo: Path) -> None:
    """Register the definitions in ``repo`` in ``store``'s registry, as ``feast apply`` does.

    Args:
        store: The repo's feature store, opened with ``KAIZEN_HOME`` set.
        repo: The Feast repo (absolute).

    Raises:
        UnsupportedLibraryVersionError: the installed Feast is not one this was written for.
        FeatureRepoError: naming the repo and the problem (definitions that fail to load,
            a ``Project`` that does not match ``feature_store.yaml``, a failed apply).
    """
    check_version()
    from feast import Project
    from feast.repo_operations import apply_total_with_repo_instance, parse_repo

    with definitions_importable(repo):
        try:
            contents = parse_repo(repo)
        except Exception as error:
            raise FeatureRepoError(
                f"feature repo {repo}: loading the definitions failed: "
                f"{type(error).__name__}: {error}"
            ) from error
    project = store.config.project
    names = [declared.name for declared in contents.projects]
    if any(name != project for name in names):
        raise FeatureRepoError(
            f"feature repo {repo}: Project object(s) {names} do not match project "
            f"{project!r} of {repo / FEATURE_STORE_YAML}"
        )
    if not contents.projects:
        contents.projects.append(Project(name=project))
    try:
        apply_total_with_repo_instance(
            store, project, store.registry, contents, skip_source_validation=False
        )
    except Exception as error:
        raise FeatureRepoError(
            f"feature repo {repo}: feast apply failed: {type(error).__name__}: {error}"
        ) from error


def record_online_store_path(store: FeatureStore, path: Path | None = None) -> None:
    """Make ``store``'s registry name ``path`` as the SQLite online store's file.

    Feast records the online store's file in the registry's infrastructure objects, and
    ``feast apply`` drops the tables of objects it no longer wants *in the file recorded
    there*. A staged build works on a copy of the live registry, which names the live file,
    so before applying it must name the staged copy (else the apply would drop tables in the
    live store), and once applied it must name the live file again (else the next
    ``feast apply`` reports a change that is none, and ``feast teardown`` misses the live
    tables). Objects without a file (Redis) are left alone.

    Args:
        store: A store opened on the registry to change.
        path: The file to record; by default the one ``store`` is configured to use.
    """
    check_version()
    target = path if path is not None else getattr(store.config.online_store, "path", None)
    if target is None:
        return
    target = Path(target).as_posix()
    infra = store.registry.get_infra(store.project)
    moved = False
    for table in infra.infra_objects:
        if getattr(table, "path", None) not in (None, target):
            table.path = target  # type: ignore[attr-defined]
            moved = True
    if moved:
        store.registry.update_infra(infra, store.project, commit=True)


def forget_materialization_history(store: FeatureStore) -> None:
    """Drop the materialization intervals Feast recorded in ``store``'s registry.

    A feature build loads the online store over a fixed interval of its own
    (``kaizen.features.store.materialize``), not from Feast's history. Feast 0.67's
    ``FeatureView.__eq__`` compares those intervals, which a view declared in the repo never
    has, so after any materialization ``feast plan`` and ``feast apply`` report every
    materialized view as "Updated" although nothing changed (in plain Feast too: apply,
    materialize-incremental, plan). A published registry without the history lets them
    report "No changes"; ``feast materialize-incremental`` then starts at now minus the TTL.

    Args:
        store: A staged store, after materialization and before its registry is published.
    """
    check_version()
    from feast.infra.registry.registry import Registry

    registry = store.registry
    if not isinstance(registry, Registry):  # a SQL or remote registry: left as Feast keeps it
        return
    registry.refresh(store.project)
    proto = registry.cached_registry_proto
    for view in proto.feature_views:
        del view.meta.materialization_intervals[:]
    registry.commit()


# DuckDB may use this much memory for one retrieval or materialization before it spills
# to disk; measured at 1M label events: 600 MB cost no time, 300 MB made the join 1.7x slower.
DUCKDB_MEMORY_LIMIT = "600MB"


@contextlib.contextmanager
def own_duckdb(store: FeatureStore) -> Iterator[None]:
    """Run the block's DuckDB offline-store queries on a connection of their own.

    Feast's DuckDB offline store runs on ibis' default backend, one in-memory DuckDB per
    process that keeps the memory of every query it ran. Here the block gets a fresh
    connection with a memory limit, closed when the block ends, so the memory of a large
    point-in-time join goes back before the next step. Other offline stores: no change.
    """
    from feast.infra.offline_stores.duckdb import DuckDBOfflineStoreConfig

    if not isinstance(store.config.offline_store, DuckDBOfflineStoreConfig):
        yield
        return
    import ibis

    previous = ibis.options.default_backend
    connection = ibis.duckdb.connect(memory_limit=DUCKDB_MEMORY_LIMIT)
    ibis.set_backend(connection)
    try:
        yield
    finally:
        ibis.options.default_backend = previous
        connection.disconnect()


def in_process_plan(
    store: FeatureStore, service: Any, views: dict[str, Any]
) -> InProcessPlan | None:
    """How to answer ``service`` with on-demand features computed here; None if only
    Feast's own ``get_online_features`` with the service gives its values.

    Args:
        store: An applied feature store.
        service: The resolved ``feast.FeatureService``.
        views: The store's stored feature views by name.

    Raises:
        UnsupportedLibraryVersionError: the installed Feast is not one this was written for.
    """
    check_version()
    return InProcessPlan.of(store, service, views)


@dataclass(frozen=True)
class OnDemandStep:
    """One pandas-mode on-demand view, resolved for in-process use."""

    prefix: str  # the view's name in the service: outputs are ``<prefix>__<feature>``
    transform: Callable[[pd.DataFrame], pd.DataFrame]
    sources: tuple[tuple[str, str, bool], ...]  # (full name, short name, integer type?)
    request_fields: tuple[tuple[str, bool], ...]  # (name, timestamp type?)
    outputs: tuple[str, ...]  # short names the service reads


@dataclass(frozen=True)
class InProcessPlan:
    """How a reader answers a service: stored features from Feast, on-demand ones here."""

    service: str
    refs: tuple[str, ...]  # ``view:feature`` refs of every stored feature needed
    join_keys: tuple[str, ...]
    steps: tuple[OnDemandStep, ...]

    @classmethod
    def of(cls, store: FeatureStore, service: Any, views: dict[str, Any]) -> InProcessPlan | None:
        """The plan for ``service``, or None if only Feast's own call gives its values."""
        on_demand = {view.name: view for view in store.list_on_demand_feature_views()}
        refs: list[str] = []
        join_keys: list[str] = []
        steps: list[OnDemandStep] = []

        def need(view: Any, feature: str) -> None:
            ref = f"{view.name}:{feature}"
            if ref not in refs:
                refs.append(ref)
            for column in view.entity_columns:
                if column.name not in join_keys:
                    join_keys.append(column.name)

        for projection in service.feature_view_projections:
            if projection.name_alias or projection.join_key_map:
                return None
            if projection.name in views:
                for feature in projection.features:
                    need(views[projection.name], feature.name)
                continue
            step = on_demand_step(on_demand.get(projection.name), projection, views)
            if step is None:
                return None
            for full_name, _, _ in step.sources:
                view_name, _, feature = full_name.partition("__")
                need(views[view_name], feature)
            steps.append(step)
        if not steps:
            return None  # nothing to save: the service call is the lookup
        return cls(service.name, tuple(refs), tuple(join_keys), tuple(steps))

    def lookup(self, store: FeatureStore, requests: list[dict[str, Any]]) -> dict[str, list[Any]]:
        """Feast's answer for ``requests`` with full names, on-demand outputs included."""
        from feast.errors import FeastObjectNotFoundException

        try:
            answer: dict[str, Any] = store.get_online_features(
                features=list(self.refs),
                entity_rows=[{key: request[key] for key in self.join_keys} for request in requests],
                full_feature_names=True,
            ).to_dict()
        except FeastObjectNotFoundException as error:
            raise FeatureRepoError(
                f"feature service {self.service!r} reads a view Feast no longer has (was the "
                f"repo re-applied without it?): {error}"
            ) from None
        except KeyError as error:
            raise ValueError(f"online_features: rows need join key {error.args[0]!r}") from None
        count = len(requests)
        for step in self.steps:
            inputs: dict[str, Any] = {key: [r[key] for r in requests] for key in self.join_keys}
            for field, timestamp in step.request_fields:
                if any(field not in request for request in requests):
                    raise ValueError(f"online_features: rows need request field {field!r}")
                given = [request[field] for request in requests]
                inputs[field] = (
                    pd.DatetimeIndex(given).as_unit("us") if timestamp else np.asarray(given)
                )
            for full_name, short_name, integer in step.sources:
                # Arrow's column as pandas reads it: ints stay int64 unless one is missing.
                values = np.array(answer[full_name], dtype=np.float64)
                if integer and not np.isnan(values).any():
                    values = values.astype(np.int64)
                inputs[full_name] = values
                inputs[short_name] = values.copy()
            outputs = step.transform(pd.DataFrame(inputs, copy=False))
            for feature in step.outputs:
                if feature not in outputs.columns or len(outputs) != count:
                    raise FeatureRepoError(
                        f"on-demand view {step.prefix!r} returned no {feature!r} for each "
                        f"of {count} row(s); got columns {list(outputs.columns)}, "
                        f"{len(outputs)} row(s)"
                    )
                column = outputs[feature]
                if column.dtype.kind not in "fiub":
                    column = pd.to_numeric(column, errors="coerce")
                answer[f"{step.prefix}__{feature}"] = column.to_numpy(dtype=np.float64)
        return answer


def on_demand_step(odfv: Any, projection: Any, views: dict[str, Any]) -> OnDemandStep | None:
    """``odfv`` resolved for in-process use, or None if Feast alone reproduces it."""
    from feast.types import Int32, Int64, UnixTimestamp

    transformation = getattr(odfv, "feature_transformation", None)
    udf = getattr(transformation, "udf", None)
    if (
        odfv is None
        or odfv.mode != "pandas"
        or odfv.write_to_online_store
        or odfv.aggregations
        or not callable(udf)
    ):
        return None
    sources: list[tuple[str, str, bool]] = []
    for source in odfv.source_feature_view_projections.values():
        if source.name not in views or source.name_alias or source.join_key_map:
            return None
        sources.extend(
            (f"{source.name}__{feature.name}", feature.name, feature.dtype in (Int32, Int64))
            for feature in source.features
        )
    request_fields = tuple(
        (field.name, field.dtype == UnixTimestamp)
        for request in odfv.source_request_sources.values()
        for field in request.schema
    )
    return OnDemandStep(
        prefix=projection.name_to_use(),
        transform=udf,
        sources=tuple(sources),
        request_fields=request_fields,
        outputs=tuple(feature.name for feature in projection.features),
    )


@contextlib.contextmanager
def definitions_importable(repo: Path) -> Iterator[None]:
    """Let Feast import the repo's modules fresh, as the CLI does, and clean up after.

    Feast imports each definition file as a top-level module named after its path relative
    to the working directory, and the files import each other the same way. Modules cached
    by an earlier apply would keep the paths they resolved then, so they are dropped
    before and after.
    """
    from feast.repo_operations import get_repo_files

    module_names = {
        ".".join(path.relative_to(repo.resolve()).with_suffix("").parts)
        for path in get_repo_files(repo)
    }
    previous_cwd = Path.cwd()
    previous_bytecode = sys.dont_write_bytecode
    for name in module_names:
        sys.modules.pop(name, None)
    sys.path.insert(0, str(repo))
    sys.dont_write_bytecode = True  # keep __pycache__ out of the repo, as the CLI does
    os.chdir(repo.resolve())
    try:
        yield
    finally:
        os.chdir(previous_cwd)
        sys.dont_write_bytecode = previous_bytecode
        with contextlib.suppress(ValueError):
            sys.path.remove(str(repo))
        for name in module_names:
            sys.modules.pop(name, None)
