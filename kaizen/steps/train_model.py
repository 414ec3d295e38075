"""Step: train the Keras model on the training split; export it with its metadata."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kaizen.steps._io import read_json, tracker

if TYPE_CHECKING:
    from kaizen.platform.settings import Settings
    from kaizen.training.model import HyperParameters


def train_step(
    train_path: str | os.PathLike[str],
    validation_path: str | os.PathLike[str],
    manifest_path: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    *,
    settings: Settings,
    hyperparameters: HyperParameters,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    run_id: str = "",
    round_index: int = 0,
) -> dict[str, Any]:
    """Train the Keras model on the training split; export ``model.keras`` and its metadata.

    With a ``run_id`` hyperparameters and per-epoch metrics go to the round's MLflow run.
    """
    import pandas as pd

    from kaizen.training.train import train

    manifest = read_json(manifest_path)
    result = train(
        pd.read_parquet(train_path),
        pd.read_parquet(validation_path),
        feature_names=list(manifest["feature_names"]),
        hparams=hyperparameters,
        output_dir=Path(model_dir),
        checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None,
    )
    _write_reference(model_dir, train_path, validation_path, list(manifest["feature_names"]))
    run = tracker(run_id, settings)
    if run is not None:
        run.log_training(model_dir, round_index=round_index)
    return result.summary()


def _write_reference(
    model_dir: str | os.PathLike[str],
    train_path: str | os.PathLike[str],
    validation_path: str | os.PathLike[str],
    feature_names: list[str],
) -> None:
    """Write ``reference.json`` beside the model: the training reference the monitor compares
    live traffic with (training features, validation scores; ``kaizen.monitoring.reference``)."""
    import pandas as pd

    from kaizen.monitoring.reference import REFERENCE_FILE, build_reference
    from kaizen.platform.fileio import write_text_atomic
    from kaizen.training.train import load_model, predict_proba

    validation = pd.read_parquet(validation_path)
    scores = predict_proba(load_model(model_dir), validation, feature_names)
    reference = build_reference(pd.read_parquet(train_path), feature_names, scores)
    write_text_atomic(Path(model_dir) / REFERENCE_FILE, reference.to_json() + "\n")
