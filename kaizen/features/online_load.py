"""Materialization into Feast's SQLite online store in one batched write.

Feast 0.67 materializes a view by reading its latest rows, turning every value into a
protobuf through pandas-aware Python per value, and writing the SQLite online store with one
``INSERT ... ON CONFLICT`` statement executed per (entity, feature). At 1,000,000
transactions (70,000 entities, 330,000 rows) that took 7.9 s of a 17 s feature build
(``benchmarks/features.py``), more than the whole hand-written baseline. Here the latest rows
come from one DuckDB query over the view's parquet file, the values become protobufs in a
tight loop per column, and all rows go in with one ``executemany`` in one transaction.

The rows written are Feast's, column for column (``entity_key`` as Feast's
``serialize_entity_key`` makes it, ``value`` the serialized ``feast.types.Value``,
``value_text``, ``event_ts`` through the adapter Feast registers with ``sqlite3``,
``created_ts`` NULL): ``tests/unit/features/test_online_load.py`` materializes the same
tables both ways and compares the stores row by row. The load opens its own DuckDB and
SQLite connections and never touches the registry, so the feature build runs it in a thread
beside the retrieval of the training rows.

Only what it can write exactly as Feast would takes this path (:func:`supported`): the
SQLite online store without vector or OpenAI-compatible columns or versioned tables, views
whose batch source is a local parquet ``FileSource`` with no field mapping and no
created-timestamp column, and features of type Float64, Int64, Int32, String or Bool.
Anything else (the cluster's Redis store, other sources or types) is materialized by
Feast's own ``FeatureStore.materialize``.

Written for feast >=0.67,<0.68 like :mod:`kaizen.features.feast_adapter`, whose version
check it calls. What it relies on beyond Feast's documented API: the SQLite online store's
table layout and name (``feast.infra.online_stores.sqlite._table_id``, created by
``feast apply``), its database path (``SqliteOnlineStore._get_db_path``), and the values
Feast writes there (``value_text`` is ``str`` of the number, nulls and NaN are an empty
``Value``, timestamps naive UTC truncated to microseconds).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa
    from feast import FeatureStore, FeatureView, FileSource

# Feast type name -> (the Value field it sets, the Python conversion Feast applies).
_VALUE_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "Float64": ("double_val", float),
    "Int64": ("int64_val", int),
    "Int32": ("int32_val", int),
    "String": ("string_val", str),
    "Bool": ("bool_val", bool),
}


def supported(store: FeatureStore, views: list[FeatureView]) -> str | None:
    """Why ``views`` cannot be loaded here (Feast's materialize must), or None if they can."""
    config = store.config
    online = config.online_store
    if config.provider != "local" or getattr(online, "type", None) != "sqlite":
        return f"online store {getattr(online, 'type', None)!r} is not Feast's sqlite store"
    if getattr(online, "vector_enabled", False) or getattr(
        online, "enable_openai_compatible_store", False
    ):
        return "the sqlite online store has vector or OpenAI-compatible columns"
    if getattr(config.registry, "enable_online_feature_view_versioning", False):
        return "online feature view versioning is on"
    if config.entity_key_serialization_version != 3:
        return "entity_key_serialization_version is not 3"
    for view in views:
        reason = _view_unsupported(view)
        if reason:
            return f"feature view {view.name!r}: {reason}"
    return None


def _view_unsupported(view: FeatureView) -> str | None:
    from feast import FileSource

    source = view.batch_source
    if not isinstance(source, FileSource):
        return "its batch source is not a FileSource"
    if "://" in source.path or not source.path.endswith(".parquet"):
        return f"its source {source.path} is not a local parquet file"
    if source.field_mapping or source.created_timestamp_column:
        return "its source has a field mapping or a created-timestamp column"
    for field in [*view.features, *view.entity_columns]:
        if str(field.dtype) not in _VALUE_FIELDS:
            return f"field {field.name!r} has type {field.dtype}"
    return None


def load_latest_rows(
    store: FeatureStore, views: list[FeatureView], start: datetime, end: datetime
) -> int:
    """Write each view's latest row per entity with ``start <= timestamp <= end``.

    The caller checks :func:`supported` first. Rows of entities not in the interval stay as
    they were, as with Feast's materialize.

    Returns:
        The number of (entity, feature) rows written.
    """
    from feast.infra.online_stores.sqlite import SqliteOnlineStore, _table_id

    from kaizen.features import feast_adapter

    feast_adapter.check_version()
    database = SqliteOnlineStore._get_db_path(store.config)
    written = 0
    with contextlib.closing(sqlite3.connect(database)) as connection:
        for view in views:
            table = _latest_rows(store, view, start, end)
            table_name = _table_id(store.project, view)
            statement = (
                f'INSERT INTO "{table_name}" '
                "(entity_key, feature_name, value, value_text, event_ts, created_ts) "
                "VALUES (?, ?, ?, ?, ?, NULL) ON CONFLICT(entity_key, feature_name) DO UPDATE "
                "SET value = excluded.value, value_text = excluded.value_text, "
                "event_ts = excluded.event_ts, created_ts = excluded.created_ts"
            )
            with connection:
                cursor = connection.executemany(statement, _rows(view, table))
                written += cursor.rowcount
    return written


def _latest_rows(
    store: FeatureStore, view: FeatureView, start: datetime, end: datetime
) -> pa.Table:
    import duckdb

    from kaizen.features.feast_adapter import DUCKDB_MEMORY_LIMIT

    source = _file_source(view)
    path = Path(source.path)
    if not path.is_absolute() and store.config.repo_path is not None:
        path = Path(store.config.repo_path) / path
    keys = [_quoted(column.name) for column in view.entity_columns]
    features = [_quoted(feature.name) for feature in view.features]
    timestamp = _quoted(source.timestamp_field)
    query = (
        f"SELECT {', '.join([*keys, *features, timestamp])} FROM read_parquet(?) "
        f"WHERE {timestamp} >= ? AND {timestamp} <= ? "
        f"QUALIFY row_number() OVER (PARTITION BY {', '.join(keys)} "
        f"ORDER BY {timestamp} DESC) = 1"
    )
    with duckdb.connect(config={"memory_limit": DUCKDB_MEMORY_LIMIT}) as connection:
        connection.execute("SET TimeZone = 'UTC'")
        return connection.sql(query, params=[str(path), start, end]).to_arrow_table()


def _rows(view: FeatureView, table: pa.Table) -> list[tuple[Any, ...]]:
    """The online-store rows of ``table``, ordered by (entity key, feature name): the
    primary key's order, so the inserts walk the table's B-tree once."""
    import pyarrow as pa
    from feast.protos.feast.types.Value_pb2 import Value

    if table.num_rows == 0:
        return []
    entity_keys = _entity_keys(view, table)
    timestamps = (
        table.column(_file_source(view).timestamp_field)
        .cast(pa.timestamp("us", tz="UTC"), safe=False)
        .to_pylist()
    )
    event_ts = [_naive_utc(moment) for moment in timestamps]
    features = sorted(
        (feature.name, *_encoded(table.column(feature.name), str(feature.dtype), Value))
        for feature in view.features
    )
    order = sorted(range(len(entity_keys)), key=entity_keys.__getitem__)
    return [
        (entity_keys[row], name, blobs[row], texts[row], event_ts[row])
        for row in order
        for name, blobs, texts in features
    ]


def _entity_keys(view: FeatureView, table: pa.Table) -> list[bytes]:
    """Feast's ``serialize_entity_key`` of each row's join keys.

    One string join key (the common case) is a fixed prefix, the value's length and the
    value: the prefix is taken from Feast's own serialization of an empty value, and the
    first row is checked against Feast's function, so a change of format fails loudly.
    Other keys go through Feast's function row by row.
    """
    import struct

    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    join_keys = [column.name for column in view.entity_columns]

    def feasts(values: list[Any]) -> bytes:
        return serialize_entity_key(
            EntityKey(join_keys=join_keys, entity_values=values),
            entity_key_serialization_version=3,
        )

    columns = view.entity_columns
    if len(columns) == 1 and str(columns[0].dtype) == "String":
        texts = table.column(columns[0].name).to_pylist()
        if None not in texts:
            empty = feasts([Value(string_val="")])
            prefix, length = empty[:-4], empty[-4:]
            if length != struct.pack("<I", 0):
                raise RuntimeError(f"unexpected entity key serialization {empty!r}")
            encoded = [text.encode("utf8") for text in texts]
            keys = [prefix + struct.pack("<I", len(raw)) + raw for raw in encoded]
            expected = feasts([Value(string_val=texts[0])])
            if keys[0] != expected:
                raise RuntimeError(f"entity key {keys[0]!r} differs from Feast's {expected!r}")
            return keys
    key_values = [
        _key_values(table.column(column.name), str(column.dtype), Value) for column in columns
    ]
    return [feasts(list(values)) for values in zip(*key_values, strict=True)]


def _file_source(view: FeatureView) -> FileSource:
    from feast import FileSource

    source = view.batch_source
    if not isinstance(source, FileSource):  # supported() said so; a change since is a bug
        raise TypeError(f"feature view {view.name!r}: the batched load needs a FileSource")
    return source


def _key_values(column: pa.ChunkedArray, dtype: str, value_type: Any) -> list[Any]:
    """The Value of each join key, as Feast builds it (a null key: an empty Value)."""
    field, convert = _VALUE_FIELDS[dtype]
    return [
        value_type() if item is None else value_type(**{field: convert(item)})
        for item in column.to_pylist()
    ]


def _encoded(
    column: pa.ChunkedArray, dtype: str, value_type: Any
) -> tuple[list[bytes], list[str | None]]:
    """Serialized Values and value_text of one feature column, as Feast writes them (null
    and NaN: an empty Value and no text). Repeated ints, strings and bools are encoded once;
    floats are not cached (0.0 and -0.0 are equal keys but different values)."""
    field, convert = _VALUE_FIELDS[dtype]
    cached = dtype != "Float64"
    empty = value_type().SerializeToString()
    cache: dict[Any, tuple[bytes, str | None]] = {}
    blobs: list[bytes] = []
    texts: list[str | None] = []
    for item in column.to_pylist():
        if item is None or item != item:
            blobs.append(empty)
            texts.append(None)
            continue
        converted = convert(item)
        hit = cache.get(converted) if cached else None
        if hit is None:
            hit = (
                value_type(**{field: converted}).SerializeToString(),
                _text(converted),
            )
            if cached and len(cache) < 100_000:
                cache[converted] = hit
        blobs.append(hit[0])
        texts.append(hit[1])
    return blobs, texts


def _text(value: Any) -> str:
    """Feast's ``value_text``: the string itself, ``str`` of a number or a bool."""
    return value if isinstance(value, str) else str(value)


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
