"""Feast's DuckDB offline store with its point-in-time join done as DuckDB ASOF joins.

``feature_repo/feature_store.yaml`` names this class as its offline store (Feast loads a
store given as ``type: <module>.<Class>`` and its config class ``<Class>Config``). Everything
but ``get_historical_features`` is Feast's DuckDB store unchanged: sources, materialization,
writes.

Why: Feast 0.67's DuckDB store joins each entity row with every feature row of its entity
inside the TTL, ranks them with ``ROW_NUMBER`` over a string row id made from the keys and
the timestamp, and joins the winners back: at 1,000,000 label events that took 9.7 s of a
25 s feature build (``benchmarks/features.py``). An ASOF join finds the latest feature row at
or before each event directly (about 1 s).

Same answers, by construction and by test: for each view, the row with the latest timestamp
at or before the entity's timestamp among rows with equal join keys; none, or one older than
the view's TTL, gives nulls; entity rows are kept as given, duplicates included.
``tests/integration/test_point_in_time.py`` runs the repository through it and
``tests/unit/features/test_offline_store.py`` compares it with Feast's own DuckDB join. Where
the ASOF join cannot say the same thing, Feast's join runs instead: a view with a
``created_timestamp_column`` (ties broken by creation time) or without a batch source,
``filter_by_created_timestamp``, or an entity frame given as SQL.

Written for feast >=0.67,<0.68, like :mod:`kaizen.features.feast_adapter`, whose version
check it calls; it uses the helpers of ``feast.infra.offline_stores.ibis`` and ``duckdb``
that Feast's own store uses.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd
from feast.infra.offline_stores.duckdb import DuckDBOfflineStore, DuckDBOfflineStoreConfig
from pydantic import StrictStr

if TYPE_CHECKING:
    from feast.feature_view import FeatureView
    from feast.infra.offline_stores.offline_store import RetrievalJob
    from feast.infra.registry.base_registry import BaseRegistry
    from feast.repo_config import RepoConfig

STORE_TYPE = "kaizen.features.offline_store.AsofDuckDBOfflineStore"
# Names of the feature table's key and timestamp columns while joined, kept apart from the
# entity frame's own columns.
_KEY = "__kaizen_key_{}"
_TIME = "__kaizen_feature_time"


class AsofDuckDBOfflineStoreConfig(DuckDBOfflineStoreConfig):
    """``offline_store: {type: kaizen.features.offline_store.AsofDuckDBOfflineStore}``."""

    type: StrictStr = STORE_TYPE


class AsofDuckDBOfflineStore(DuckDBOfflineStore):
    """Feast's DuckDB offline store, point-in-time joins by ASOF join (see the module)."""

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
    ) -> RetrievalJob:
        from kaizen.features import feast_adapter

        feast_adapter.check_version()
        if (
            filter_by_created_timestamp
            or not isinstance(entity_df, pd.DataFrame)
            or any(
                view.batch_source is None or view.batch_source.created_timestamp_column
                for view in feature_views
            )
        ):
            return DuckDBOfflineStore.get_historical_features(
                config,
                feature_views,
                feature_refs,
                entity_df,
                registry,
                project,
                full_feature_names,
                filter_by_created_timestamp,
            )
        return _asof_historical_features(
            config, feature_views, feature_refs, entity_df, registry, project, full_feature_names
        )


def _asof_historical_features(
    config: RepoConfig,
    feature_views: list[FeatureView],
    feature_refs: list[str],
    entity_df: pd.DataFrame,
    registry: BaseRegistry,
    project: str,
    full_feature_names: bool,
) -> RetrievalJob:
    import ibis
    import ibis.expr.datatypes as dt
    import pyarrow as pa
    from feast.infra.offline_stores import offline_utils
    from feast.infra.offline_stores.duckdb import _read_data_source, _write_data_source
    from feast.infra.offline_stores.ibis import (
        IbisRetrievalJob,
        _get_entity_df_event_timestamp_range,
        _get_entity_schema,
        _to_utc,
    )
    from feast.infra.offline_stores.offline_store import RetrievalMetadata
    from feast.on_demand_feature_view import OnDemandFeatureView

    event_time = offline_utils.infer_event_timestamp_from_entity_df(
        entity_schema=_get_entity_schema(entity_df)
    )
    time_range = _get_entity_df_event_timestamp_range(entity_df, event_time)
    entity_df = _to_utc(entity_df, event_time)
    # As Arrow: DuckDB scans it in parallel, where a pandas frame's strings go through Python.
    joined = ibis.memtable(pa.Table.from_pandas(entity_df, preserve_index=False))
    columns = list(entity_df.columns)
    for view in feature_views:
        source = view.batch_source
        assert source is not None  # views without one took Feast's own path
        table = _read_data_source(source, str(config.repo_path))
        for old_name, new_name in source.field_mapping.items():
            if old_name in table.columns:
                table = table.rename({new_name: old_name})
        prefix = view.projection.name_to_use()
        wanted = [ref.split(":")[1] for ref in feature_refs if ref.startswith(f"{prefix}:")]
        base = view.projection.name_alias or view.name
        names = {
            feature: f"{base}__{feature}" if full_feature_names else feature for feature in wanted
        }
        keys = view.projection.join_key_map or {e.name: e.name for e in view.entity_columns}
        table = table.select(
            **{_KEY.format(i): table[column] for i, column in enumerate(keys)},
            **{_TIME: table[source.timestamp_field].cast(dt.Timestamp(timezone="UTC"))},
            **{names[feature]: table[feature] for feature in wanted},
        )
        joined = joined.asof_join(
            table,
            on=joined[event_time] >= table[_TIME],
            predicates=[
                joined[entity_key] == table[_KEY.format(i)]
                for i, entity_key in enumerate(keys.values())
            ],
        )
        fresh = _within_ttl(joined, event_time, view.ttl)
        joined = joined.select(
            *columns,
            **{
                name: joined[name] if fresh is None else ibis.ifelse(fresh, joined[name], None)
                for name in names.values()
            },
        )
        columns.extend(names.values())

    odfvs = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
    for odfv in [odfv for odfv in odfvs if odfv.mode == "substrait"]:
        joined = odfv.transform_ibis(joined, full_feature_names)
    return IbisRetrievalJob(
        joined,
        [odfv for odfv in odfvs if odfv.mode != "substrait"],
        full_feature_names,
        metadata=RetrievalMetadata(
            features=feature_refs,
            keys=list(set(entity_df.columns) - {event_time}),
            min_event_timestamp=time_range[0],
            max_event_timestamp=time_range[1],
        ),
        data_source_writer=_write_data_source,
        staging_location=config.offline_store.staging_location,
        staging_location_endpoint_override=config.offline_store.staging_location_endpoint_override,
        repo_path=str(config.repo_path),
    )


def _within_ttl(joined: Any, event_time: str, ttl: timedelta | None) -> Any:
    """True where the matched feature row is at most ``ttl`` older than the entity row (as
    Feast's ``event_timestamp + ttl >= entity timestamp``); None when there is no TTL."""
    import ibis

    if not ttl:
        return None
    return (
        joined[_TIME] + ibis.interval(microseconds=int(ttl / timedelta(microseconds=1)))
        >= joined[event_time]
    )
