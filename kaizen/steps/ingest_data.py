"""Step: generate or load transactions, validate them, write Parquet."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kaizen.steps._io import SOURCE_ATTR, tracker, write_parquet

if TYPE_CHECKING:
    from kaizen.platform.settings import Settings


def ingest_step(
    source_uri: str,
    output_path: str | os.PathLike[str],
    *,
    settings: Settings,
    seed: int = 42,
    rows: int = 20_000,
    customers: int = 400,
    merchants: int = 80,
    days: int = 35,
    fraud_rate: float = 0.02,
    drift: float = 0.0,
    run_id: str = "",
) -> dict[str, Any]:
    """Generate (empty ``source_uri``) or load a user's transactions, validate, write Parquet.

    With a ``run_id`` the data parameters are logged on the run's MLflow parent run.

    Raises:
        kaizen.data.ingest.DataSourceError: the source cannot be read.
        kaizen.data.ingest.DataValidationError: the data breaks the schema; nothing is written.
    """
    from kaizen.data.generator import GeneratorConfig
    from kaizen.data.ingest import ingest

    config = GeneratorConfig(
        seed=seed,
        rows=rows,
        customers=customers,
        merchants=merchants,
        days=days,
        fraud_rate=fraud_rate,
        drift=drift,
    )
    result = ingest(source_uri or None, config)
    result.frame.attrs[SOURCE_ATTR] = result.source
    write_parquet(result.frame, Path(output_path))
    run = tracker(run_id, settings)
    if run is not None:
        run.log_pipeline_params(
            {"source_uri": source_uri, **({} if source_uri else asdict(config))}
        )
    return {"source": result.source, "rows": result.rows, **result.summary}
