"""Step: feature tables, Feast apply + materialize, point-in-time train/validation/test splits."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kaizen.platform.fileio import write_json_atomic
from kaizen.steps._io import SOURCE_ATTR, tracker, write_parquet

if TYPE_CHECKING:
    from kaizen.platform.settings import Settings


def features_step(
    transactions_path: str | os.PathLike[str],
    feature_repo: str | os.PathLike[str],
    *,
    settings: Settings,
    train_path: str | os.PathLike[str],
    validation_path: str | os.PathLike[str],
    test_path: str | os.PathLike[str],
    manifest_path: str | os.PathLike[str],
    validation_days: int = 5,
    test_days: int = 5,
    warmup_days: int = 7,
    run_id: str = "",
) -> dict[str, Any]:
    """Compute feature tables, apply the Feast repo, materialize, build the temporal splits.

    Feast's data lives under ``settings.home``. With a ``run_id`` the data fingerprints,
    windows and feature service go to MLflow.
    """
    import pandas as pd

    from kaizen.features import build_features

    transactions = pd.read_parquet(transactions_path)
    result = build_features(
        transactions,
        source=transactions.attrs.get(SOURCE_ATTR, str(transactions_path)),
        repo_path=Path(feature_repo),
        kaizen_home=settings.home,
        validation_days=validation_days,
        test_days=test_days,
        warmup_days=warmup_days,
        config=settings.feast_config,
    )
    write_parquet(result.train, Path(train_path))
    write_parquet(result.validation, Path(validation_path))
    write_parquet(result.test, Path(test_path))
    manifest = result.manifest()
    write_json_atomic(Path(manifest_path), manifest)
    run = tracker(run_id, settings)
    if run is not None:
        run.log_data(
            manifest=manifest,
            training_data=train_path,
            transactions=transactions_path,
            git_commit=settings.git_commit,
        )
    return manifest
