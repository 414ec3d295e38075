"""Batch sources of the feature views, and the request source of the live transaction.

``kaizen.features.write_feature_sources`` writes the two parquet files. Where they live
differs per environment, and a FileSource path is fixed when ``feast apply`` imports this
module (the registry stores the resolved path), so the location is read from the
environment here, at apply time, and nowhere else:

* ``KAIZEN_FEAST_DATA_URI`` if set (the cluster: ``s3://<bucket>/feast/data``);
* otherwise ``$KAIZEN_HOME/feast/data`` (the embedded default), the same ``KAIZEN_HOME``
  that ``feature_store.yaml`` expands for the registry and the online store, so one
  registry always points at the parquet files of its own home.

Without either variable the import fails with a message saying so, instead of letting
``feast apply`` record a path that no run will ever write. ``kaizen.features`` sets
``KAIZEN_HOME`` itself while it applies the repository.
"""

import os
from pathlib import Path

from feast import Field, FileSource, RequestSource
from feast.types import Float64, UnixTimestamp


def _feature_data_uri() -> str:
    explicit = os.environ.get("KAIZEN_FEAST_DATA_URI", "").strip()
    if explicit:
        return explicit.rstrip("/")
    home = os.environ.get("KAIZEN_HOME", "").strip()
    if not home:
        raise RuntimeError(
            "feature_repo/data_sources.py: neither KAIZEN_FEAST_DATA_URI nor KAIZEN_HOME is set, "
            "so the feature parquet location is unknown; set KAIZEN_HOME to an absolute path "
            "(the same one feature_store.yaml expands), e.g. "
            "`KAIZEN_HOME=$PWD/.kaizen feast -c feature_repo apply`"
        )
    return (Path(home).expanduser().absolute() / "feast" / "data").as_posix()


_FEATURE_DATA_URI = _feature_data_uri()
# Minio needs an endpoint override; Feast's S3 registry store reads the same variable.
_S3_ENDPOINT = os.environ.get("FEAST_S3_ENDPOINT_URL") or None

customer_stats_source = FileSource(
    name="customer_stats_source",
    path=f"{_FEATURE_DATA_URI}/customer_stats.parquet",
    timestamp_field="event_timestamp",
    s3_endpoint_override=_S3_ENDPOINT if _FEATURE_DATA_URI.startswith("s3://") else None,
    description=(
        "Per-customer spending in the open windows (t - w, t) before each row's timestamp t; "
        "a row at every transaction's own time and one just after the data ends."
    ),
)

merchant_stats_source = FileSource(
    name="merchant_stats_source",
    path=f"{_FEATURE_DATA_URI}/merchant_stats.parquet",
    timestamp_field="event_timestamp",
    s3_endpoint_override=_S3_ENDPOINT if _FEATURE_DATA_URI.startswith("s3://") else None,
    description=(
        "Daily 00:00 UTC snapshot per merchant of the 30 days before it: transactions, and "
        "labels that were known (label_timestamp) before the snapshot."
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
