"""FraudPredictor in process: verified loading, readiness, V2 tensor checks, V1 scoring."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest

from kaizen.data.columns import LABEL
from kaizen.registry import ModelIntegrityError, PipelineRunTracker, register_challenger
from kaizen.serving.predictor import FraudPredictor

FEATURES = ["amount_zscore", "merchant_risk", "velocity_1h"]


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < 0.25).astype(np.int64)
    values = rng.normal(size=(rows, len(FEATURES)))
    values[:, 0] += 2.5 * labels
    frame = pd.DataFrame(values, columns=FEATURES)
    frame[LABEL] = labels
    return frame


@pytest.fixture(scope="session")
def model_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real training export, read-only."""
    from kaizen.training.model import HyperParameters
    from kaizen.training.train import train

    export = tmp_path_factory.mktemp("serving-export") / "model"
    train(
        _frame(300, 3),
        _frame(100, 4),
        FEATURES,
        HyperParameters(epochs=2, patience=2, batch_size=64, units=4, num_layers=1, seed=3),
        export,
    )
    return export


@pytest.fixture
def registered(model_export: Path) -> Path:
    """The export registered as champion in this test's KAIZEN_HOME; returns its stored folder."""
    info = register_challenger(model_export, run_id=PipelineRunTracker("run-1").round_run_id(0))
    return Path(unquote(urlparse(info.source).path))


def _v2(tensor: InferInput) -> InferRequest:
    return InferRequest(model_name="fraud-detector", infer_inputs=[tensor], request_id="r")


def test_ready_only_after_loading_the_champion(registered: Path) -> None:
    predictor = FraudPredictor(max_batch=4)
    assert not predictor.ready

    assert predictor.load()

    assert predictor.ready
    assert predictor.model_version == 1
    assert predictor.features == FEATURES
    assert predictor.feature_service == "fraud_model_v1"


def test_a_tampered_model_is_refused_and_never_ready(registered: Path) -> None:
    path = registered / "model.keras"
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))
    predictor = FraudPredictor()

    with pytest.raises(ModelIntegrityError, match=r"model\.keras sha256 mismatch"):
        predictor.load()

    assert not predictor.ready
    assert predictor.model is None


def test_v1_scores_follow_the_threshold(registered: Path) -> None:
    predictor = FraudPredictor(threshold=0.0)
    predictor.load()
    body = {"instances": [dict.fromkeys(FEATURES, 0.0)]}

    matrix = asyncio.run(predictor.preprocess(body))
    (answer,) = asyncio.run(predictor.predict(matrix))["predictions"]

    assert 0.0 < answer["fraud_probability"] < 1.0
    assert answer["is_fraud"] is True
    assert answer["model_version"] == 1


def test_a_binary_v2_tensor_with_nan_is_rejected_naming_row_and_feature(registered: Path) -> None:
    # JSON cannot carry NaN, but V2 binary tensors can: the predictor checks every value.
    predictor = FraudPredictor()
    predictor.load()
    tensor = InferInput("features", [2, 3], "FP32")
    tensor.set_data_from_numpy(
        np.array([[0, 0, 0], [0, np.nan, 0]], dtype=np.float32), binary_data=True
    )

    with pytest.raises(InvalidInput, match=r"inputs.features\[1\]\[1\] \(merchant_risk\)"):
        asyncio.run(predictor.preprocess(_v2(tensor)))


def test_a_v2_request_with_two_tensors_is_rejected(registered: Path) -> None:
    predictor = FraudPredictor()
    predictor.load()
    tensor = InferInput("features", [1, 3], "FP32", data=[0.0, 0.0, 0.0])
    request = InferRequest(model_name="fraud-detector", infer_inputs=[tensor, tensor])

    with pytest.raises(InvalidInput, match=r"expected exactly one tensor 'features'"):
        asyncio.run(predictor.preprocess(request))


def test_bad_settings_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="threshold must be within"):
        FraudPredictor(threshold=1.5)
    with pytest.raises(ValueError, match="max_batch must be at least 1"):
        FraudPredictor(max_batch=0)
