"""Shared MLflow store and trained exports for the registry tests.

Creating MLflow's SQLite schema takes seconds, so it is created once per session and copied
into each test's own KAIZEN_HOME: every test still gets an empty, private store.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kaizen.data.columns import LABEL

FEATURES = ["amount_zscore", "merchant_risk", "velocity_1h"]


def synthetic_frame(rows: int, seed: int) -> pd.DataFrame:
    """Rows whose features shift with the label, so a tiny model learns something."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < 0.25).astype(np.int64)
    values = rng.normal(size=(rows, len(FEATURES)))
    values[:, 0] += 2.5 * labels
    values[:, 1] += 1.5 * labels
    frame = pd.DataFrame(values, columns=FEATURES)
    frame[LABEL] = labels
    return frame


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow database with its schema created."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    uri = f"sqlite:///{path}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.search_experiments(max_results=1)
    client.search_registered_models(max_results=1)
    return path


@pytest.fixture(autouse=True)
def tracking_db(kaizen_home: Path, mlflow_template: Path) -> Path:
    """This test's own copy of the empty MLflow database, where the settings look for it."""
    kaizen_home.mkdir(parents=True, exist_ok=True)
    target = kaizen_home / "mlflow.db"
    shutil.copyfile(mlflow_template, target)
    return target


def _train(directory: Path, seed: int) -> Path:
    from kaizen.training.model import HyperParameters
    from kaizen.training.train import train

    train(
        synthetic_frame(400, seed),
        synthetic_frame(200, seed + 100),
        FEATURES,
        HyperParameters(epochs=3, patience=3, batch_size=64, units=8, num_layers=1, seed=seed),
        directory,
    )
    return directory


@pytest.fixture(scope="session")
def model_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real training export (model.keras, sha256, features.json, metadata.json). Read-only."""
    return _train(tmp_path_factory.mktemp("export-a") / "model", seed=7)


@pytest.fixture(scope="session")
def other_model_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second export with different weights (another seed). Read-only."""
    return _train(tmp_path_factory.mktemp("export-b") / "model", seed=8)
