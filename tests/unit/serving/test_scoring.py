"""The predictor's compiled scoring gives the probabilities of the Keras model's own call."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import numpy as np
import pytest

from kaizen.serving.predictor import _score
from kaizen.training.train import load_model
from tests.support.serving import export_tiny_model

FEATURES = ["amount_zscore", "merchant_risk", "velocity_1h", "hour_sin"]


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_model(tmp_path_factory.mktemp("scoring") / "model", FEATURES, seed=11)


@pytest.mark.parametrize("rows", [1, 3, 256])
def test_compiled_scores_equal_the_eager_model_call(export: Path, rows: int) -> None:
    model = load_model(export)
    rng = np.random.default_rng(rows)
    matrix = (rng.normal(size=(rows, len(FEATURES))) * 3.0).astype(np.float32)
    matrix[0] = [1e9, -1e9, 0.0, 1.0]  # the largest values preprocess lets through

    expected = np.asarray(model(matrix, training=False)).reshape(-1).astype(np.float64)
    got = _score(model, matrix, FEATURES)

    assert got.dtype == np.float64
    assert got.shape == (rows,)
    # Same graph and kernels, but TensorFlow may split a batch across threads differently
    # from one call to the next (a loaded machine): the same scores to float32 rounding.
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    # The traced function serves every batch size, not only the first one it saw.
    np.testing.assert_allclose(_score(model, matrix[:1], FEATURES), expected[:1], rtol=0, atol=1e-6)


def test_a_feature_count_the_model_was_not_built_for_is_refused(export: Path) -> None:
    model = load_model(export)

    with pytest.raises(ValueError, match="the model expects 4 features, got 3 feature names"):
        _score(model, np.zeros((1, 3), dtype=np.float32), FEATURES[:3])


def test_a_replaced_model_is_not_kept_alive_by_its_compiled_function(export: Path) -> None:
    # Hot reloads replace the model; the compiled function must not pin the old one.
    model = load_model(export)
    _score(model, np.zeros((1, len(FEATURES)), dtype=np.float32), FEATURES)
    alive = weakref.ref(model)

    del model
    gc.collect()

    assert alive() is None
