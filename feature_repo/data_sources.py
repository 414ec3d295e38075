"""Batch sources of the feature views, and the request source of the live transaction.

``kaizen.features`` writes the two parquet files of each feature build into a folder of its
own, a *generation* (``$KAIZEN_HOME/feast/data/<generation>/``), and never rewrites it; the
build that passes every check makes ``$KAIZEN_HOME/feast/data/current`` point at it (see
docs/data.md, "Nothing good is lost"). A FileSource path is fixed when ``feast apply`` imports
this module (the registry stores it), so the location is read here, at apply time:

* ``KAIZEN_FEAST_DATA_URI`` if set: the folder holding the two files (a feature build sets it
  to its own generation while it applies; the cluster: ``s3://<bucket>/feast/data/...``), or
  a link to it (``envs/volume``: the generation the link names is recorded);
* otherwise the generation ``$KAIZEN_HOME/feast/data/current`` points at (the embedded
  default), so a hand-run ``feast apply`` records the same paths as the last good build and
  reports no change; before any build, ``.../data/current`` itself.

``KAIZEN_HOME`` must be absolute: Feast reads the registry and online store paths of
``feature_store.yaml`` relative to ``feature_repo/``, not to the folder it was started in.
Without a location the import fails with a message saying so, instead of letting
``feast apply`` record a path that no run will ever write. ``kaizen.features`` sets both
variables itself while it applies the repository.

Feast imports this module without saying which ``feature_store.yaml`` is in use, so the kind
of batch source follows ``KAIZEN_FEAST_OFFLINE_STORE``, which must match the configuration's
offline store:

* ``duckdb`` (the default, ``feature_store.yaml``): FileSources over the folder above;
* ``spark`` (``envs/cluster/feature_store.yaml``): SparkSources over the same two parquet
  files in the bucket. ``KAIZEN_FEAST_DATA_URI`` is then required (a folder on the machine
  running ``feast apply`` means nothing to Spark executors); an ``s3://`` URI is recorded as
  ``s3a://``, the scheme of Spark's S3 connector.
"""

import os
from pathlib import Path

from feast import Field, FileSource, RequestSource
from feast.data_source import DataSource
from feast.types import Float64, UnixTimestamp

# KAIZEN_FEAST_OFFLINE_STORE: the offline store type of the configuration -> batch source kind.
_OFFLINE_STORES = {"duckdb": "FileSource", "spark": "SparkSource"}


def _feature_data_uri() -> str:
    explicit = os.environ.get("KAIZEN_FEAST_DATA_URI", "").strip()
    if explicit:
        explicit = explicit.rstrip("/")
        link = Path(explicit)
        if "://" not in explicit and link.is_symlink():
            # The link a feature build switches (envs/volume): the generation it names now,
            # the path that build recorded.
            return (link.parent / os.readlink(link)).as_posix()
        return explicit
    home = os.environ.get("KAIZEN_HOME", "").strip()
    example = "`KAIZEN_HOME=$PWD/.kaizen feast -c feature_repo apply`"
    if not home:
        raise RuntimeError(
            "feature_repo/data_sources.py: neither KAIZEN_FEAST_DATA_URI nor KAIZEN_HOME is set, "
            "so the feature parquet location is unknown; set KAIZEN_HOME to an absolute path "
            f"(the same one feature_store.yaml expands), e.g. {example}"
        )
    if not Path(home).expanduser().is_absolute():
        raise RuntimeError(
            f"feature_repo/data_sources.py: KAIZEN_HOME={home!r} is relative; Feast would read "
            "the registry and online store of feature_store.yaml relative to feature_repo/, not "
            f"to this folder. Give it as an absolute path, e.g. {example}"
        )
    data = Path(home).expanduser().absolute() / "feast" / "data"
    current = data / "current"
    # The link's own target (a generation folder name), not a full resolve: the path must
    # be the one the build recorded, whatever other links KAIZEN_HOME goes through.
    return (data / os.readlink(current) if current.is_symlink() else current).as_posix()


def _offline_store() -> str:
    store = os.environ.get("KAIZEN_FEAST_OFFLINE_STORE", "").strip() or "duckdb"
    if store not in _OFFLINE_STORES:
        known = ", ".join(f"{name!r} ({kind})" for name, kind in _OFFLINE_STORES.items())
        raise RuntimeError(
            f"feature_repo/data_sources.py: KAIZEN_FEAST_OFFLINE_STORE={store!r} is not a "
            f"known offline store; use one of {known}: 'duckdb' with feature_store.yaml "
            "(the default when unset), 'spark' with envs/cluster/feature_store.yaml"
        )
    return store


def _spark_data_uri() -> str:
    if not os.environ.get("KAIZEN_FEAST_DATA_URI", "").strip():
        raise RuntimeError(
            "feature_repo/data_sources.py: KAIZEN_FEAST_OFFLINE_STORE=spark needs "
            "KAIZEN_FEAST_DATA_URI, the bucket folder of the feature parquet files as Spark "
            "reads it, e.g. KAIZEN_FEAST_DATA_URI=s3a://kaizen/feast/data/current"
        )
    uri = _feature_data_uri()
    return "s3a://" + uri.removeprefix("s3://") if uri.startswith("s3://") else uri


def _batch_source(name: str, file_name: str, description: str) -> DataSource:
    path = f"{_FEATURE_DATA_URI}/{file_name}"
    if _OFFLINE_STORE == "spark":
        # Imported only here: the embedded default does not need the Spark extra.
        from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import (
            SparkSource,
        )

        return SparkSource(
            name=name,
            path=path,
            file_format="parquet",
            timestamp_field="event_timestamp",
            description=description,
        )
    return FileSource(
        name=name,
        path=path,
        timestamp_field="event_timestamp",
        s3_endpoint_override=_S3_ENDPOINT if _FEATURE_DATA_URI.startswith("s3://") else None,
        description=description,
    )


_OFFLINE_STORE = _offline_store()
_FEATURE_DATA_URI = _spark_data_uri() if _OFFLINE_STORE == "spark" else _feature_data_uri()
# Minio needs an endpoint override; Feast's S3 registry store reads the same variable.
# (Spark's S3 connector takes its endpoint from spark_conf in envs/cluster/feature_store.yaml.)
_S3_ENDPOINT = os.environ.get("FEAST_S3_ENDPOINT_URL") or None

customer_stats_source = _batch_source(
    "customer_stats_source",
    "customer_stats.parquet",
    description=(
        "Per-customer spending in the open windows (t - w, t) before each row's timestamp t; "
        "a row at every transaction's own time and one just after the data ends."
    ),
)

merchant_stats_source = _batch_source(
    "merchant_stats_source",
    "merchant_stats.parquet",
    description=(
        "Daily 00:00 UTC snapshot per merchant of the 30 days before it: transactions, and "
        "labels that were known (label_timestamp) before the snapshot; written for the days "
        "the merchant has a transaction and the last day of the data, where it is read."
    ),
)

transaction_request_source = RequestSource(
    name="transaction_request_source",
    schema=[
        Field(name="amount", dtype=Float64, description="Amount of the transaction being scored."),
        Field(
            name="transaction_time",
            dtype=UnixTimestamp,
            description="When the transaction happened (UTC).",
        ),
    ],
    description="The live transaction: known at request time, never stored.",
)
