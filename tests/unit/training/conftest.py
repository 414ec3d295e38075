"""Synthetic training frames with a learnable fraud signal, and one shared trained model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from kaizen.data.columns import CUSTOMER_ID, EVENT_TIMESTAMP, LABEL, TRANSACTION_ID

if TYPE_CHECKING:
    from kaizen.training.train import TrainingResult

FEATURES = ["amount_zscore", "merchant_risk", "velocity_1h", "noise"]


def synthetic_frame(
    rows: int, seed: int, *, fraud_rate: float = 0.2, signal: float = 2.5
) -> pd.DataFrame:
    """Rows whose first three features shift with the label; ``noise`` carries no signal."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < fraud_rate).astype(np.int64)
    values = rng.normal(size=(rows, len(FEATURES)))
    values[:, 0] += signal * labels
    values[:, 1] += 0.6 * signal * labels
    values[:, 2] -= 0.4 * signal * labels
    frame = pd.DataFrame(values, columns=FEATURES)
    frame[LABEL] = labels
    # Key and timestamp columns ride along as in a real training set; never features.
    frame[TRANSACTION_ID] = [f"t{seed}-{index}" for index in range(rows)]
    frame[CUSTOMER_ID] = rng.integers(0, 50, size=rows)
    frame[EVENT_TIMESTAMP] = pd.date_range("2026-01-01", periods=rows, freq="min", tz="UTC")
    return frame


@pytest.fixture
def make_frame() -> Callable[..., pd.DataFrame]:
    return synthetic_frame


@pytest.fixture(scope="session")
def train_frame() -> pd.DataFrame:
    return synthetic_frame(2000, seed=1)


@pytest.fixture(scope="session")
def validation_frame() -> pd.DataFrame:
    return synthetic_frame(600, seed=2)


@pytest.fixture(scope="session")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
    train_frame: pd.DataFrame,
    validation_frame: pd.DataFrame,
) -> TrainingResult:
    """One real training run shared by the tests that only read its outputs."""
    from kaizen.training.model import HyperParameters
    from kaizen.training.train import train

    output_dir: Path = tmp_path_factory.mktemp("trained") / "model"
    return train(
        train_frame,
        validation_frame,
        FEATURES,
        HyperParameters(epochs=6, patience=2, batch_size=128, units=32),
        output_dir,
    )
