"""FraudPredictor in process: verified loading, readiness, V2 tensor checks, V1 scoring,
request timeouts, broken models and broken Feast repos."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse

from kaizen.data.columns import LABEL
from kaizen.features.store import FeatureRepoError
from kaizen.platform.settings import Settings
from kaizen.registry import ModelIntegrityError, PipelineRunTracker, register_challenger
from kaizen.serving import predictor as predictor_module
from kaizen.serving import server
from kaizen.serving.errors import PredictionFailedError, RequestTimeoutError
from kaizen.serving.predictor import FraudPredictor, V2Batch
from tests.support.serving import export_tiny_model

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
def registered(model_export: Path, settings: Settings) -> Path:
    """The export registered as champion under this test's settings; returns its stored folder."""
    info = register_challenger(
        model_export,
        run_id=PipelineRunTracker("run-1", settings=settings).round_run_id(0),
        settings=settings,
    )
    return Path(unquote(urlparse(info.source).path))


def _v2(tensor: InferInput) -> InferRequest:
    return InferRequest(model_name="fraud-detector", infer_inputs=[tensor], request_id="r")


def test_ready_only_after_loading_the_champion(registered: Path, settings: Settings) -> None:
    predictor = FraudPredictor(max_batch=4, settings=settings)
    assert not predictor.ready

    assert predictor.load()

    assert predictor.ready
    assert predictor.model_version == 1
    assert predictor.features == FEATURES
    assert predictor.feature_service == "fraud_model_v1"


def test_a_tampered_model_is_refused_and_never_ready(registered: Path, settings: Settings) -> None:
    path = registered / "model.keras"
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))
    predictor = FraudPredictor(settings=settings)

    with pytest.raises(ModelIntegrityError, match=r"model\.keras sha256 mismatch"):
        predictor.load()

    assert not predictor.ready
    assert predictor.model is None


def test_v1_scores_follow_the_threshold(registered: Path, settings: Settings) -> None:
    predictor = FraudPredictor(threshold=0.0, settings=settings)
    predictor.load()
    body = {"instances": [dict.fromkeys(FEATURES, 0.0)]}

    matrix = asyncio.run(predictor.preprocess(body))
    (answer,) = asyncio.run(predictor.predict(matrix))["predictions"]

    assert 0.0 < answer["fraud_probability"] < 1.0
    assert answer["is_fraud"] is True
    assert answer["model_version"] == 1


def _decide(predictor: FraudPredictor, rows: list[dict[str, float]]) -> list[dict[str, Any]]:
    matrix = asyncio.run(predictor.preprocess({"instances": rows}))
    return list(asyncio.run(predictor.predict(matrix))["predictions"])


def test_the_predictor_decides_with_the_threshold_recorded_with_the_version(
    tmp_path: Path, settings: Settings
) -> None:
    from kaizen.evaluation.threshold import TAG_DECISION_THRESHOLD

    export = export_tiny_model(tmp_path / "export", FEATURES)
    rows = [dict(zip(FEATURES, values, strict=True)) for values in _frame(40, 11)[FEATURES].values]
    # Unrecorded first: the documented default, 0.5.
    register_challenger(
        export,
        run_id=PipelineRunTracker("run-plain", settings=settings).round_run_id(0),
        settings=settings,
    )
    plain = FraudPredictor(alias=1, settings=settings)
    plain.load()
    scores = [p["fraud_probability"] for p in _decide(plain, rows)]
    # A threshold that decides some of these rows differently from 0.5.
    at_half = [s >= 0.5 for s in scores]
    recorded = next(
        q
        for q in (float(np.quantile(scores, 0.25)), float(np.quantile(scores, 0.75)))
        if [s >= q for s in scores] != at_half
    )
    register_challenger(
        export,
        run_id=PipelineRunTracker("run-tagged", settings=settings).round_run_id(0),
        settings=settings,
        tags={TAG_DECISION_THRESHOLD: repr(recorded)},
    )
    tagged = FraudPredictor(alias=2, settings=settings)
    tagged.load()
    override = FraudPredictor(alias=2, threshold=0.0, settings=settings)
    override.load()

    assert plain.threshold == 0.5
    assert [p["is_fraud"] for p in _decide(plain, rows)] == [s >= 0.5 for s in scores]
    assert tagged.threshold == recorded
    decided = [p["is_fraud"] for p in _decide(tagged, rows)]
    assert decided == [s >= recorded for s in scores]
    assert decided != [s >= 0.5 for s in scores]  # the recorded threshold made a difference
    assert override.threshold == 0.0  # the server's --threshold still wins
    assert all(p["is_fraud"] for p in _decide(override, rows))


def test_a_binary_v2_tensor_with_nan_is_rejected_naming_row_and_feature(
    registered: Path, settings: Settings
) -> None:
    # JSON cannot carry NaN, but V2 binary tensors can: the predictor checks every value.
    predictor = FraudPredictor(settings=settings)
    predictor.load()
    tensor = InferInput("features", [2, 3], "FP32")
    tensor.set_data_from_numpy(
        np.array([[0, 0, 0], [0, np.nan, 0]], dtype=np.float32), binary_data=True
    )

    with pytest.raises(InvalidInput, match=r"inputs.features\[1\]\[1\] \(merchant_risk\)"):
        asyncio.run(predictor.preprocess(_v2(tensor)))


def test_a_v2_request_with_two_tensors_is_rejected(registered: Path, settings: Settings) -> None:
    predictor = FraudPredictor(settings=settings)
    predictor.load()
    tensor = InferInput("features", [1, 3], "FP32", data=[0.0, 0.0, 0.0])
    request = InferRequest(model_name="fraud-detector", infer_inputs=[tensor, tensor])

    with pytest.raises(InvalidInput, match=r"expected exactly one tensor 'features'"):
        asyncio.run(predictor.preprocess(request))


def test_bad_settings_are_refused_at_construction(settings: Settings) -> None:
    with pytest.raises(ValueError, match="threshold must be within"):
        FraudPredictor(threshold=1.5, settings=settings)
    with pytest.raises(ValueError, match="max_batch must be at least 1"):
        FraudPredictor(max_batch=0, settings=settings)


def test_a_v2_request_is_decoded_once_and_answered_with_its_id(
    registered: Path, settings: Settings
) -> None:
    predictor = FraudPredictor(settings=settings)
    predictor.load()
    rows = np.array([[0, 0, 0], [3, 2, 0]], dtype=np.float32)
    tensor = InferInput("features", [2, 3], "FP32")
    tensor.set_data_from_numpy(rows, binary_data=False)

    batch = asyncio.run(predictor.preprocess(_v2(tensor)))
    response = asyncio.run(predictor.predict(batch))
    v1 = asyncio.run(predictor.predict(rows))

    assert isinstance(batch, V2Batch)
    np.testing.assert_array_equal(batch.matrix, rows)
    assert isinstance(response, InferResponse)
    assert response.id == "r"
    assert response.model_version == "1"
    (output,) = response.outputs
    expected = [p["fraud_probability"] for p in v1["predictions"]]
    assert output.as_numpy().tolist() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1e10, r"instances\[0\]\.merchant_risk: expected a number within ±1e\+09, got 1e\+10"),
        (-3e38, r"instances\[0\]\.merchant_risk: expected a number within ±1e\+09"),
    ],
)
def test_feature_values_beyond_the_supported_range_are_400_naming_the_field(
    registered: Path, value: float, expected: str, settings: Settings
) -> None:
    # float32 holds 3e38, but no layer of the model would stay finite on it.
    predictor = FraudPredictor(settings=settings)
    predictor.load()
    body = {"instances": [{"amount_zscore": 0.0, "merchant_risk": value, "velocity_1h": 0.0}]}

    with pytest.raises(InvalidInput, match=expected):
        asyncio.run(predictor.preprocess(body))


def test_a_request_over_its_time_budget_is_a_timeout_naming_the_stage(
    registered: Path, settings: Settings
) -> None:
    # Validating 256 instances alone takes far longer than 0.1 ms, so the budget is spent
    # before the first await: the request never gets its scores.
    predictor = FraudPredictor(request_timeout=0.0001, settings=settings)
    predictor.load()
    body = {"instances": [dict.fromkeys(FEATURES, 0.5)] * 256}

    with pytest.raises(RequestTimeoutError, match=r"timed out after 0.0001 s during scoring"):
        asyncio.run(predictor(body))


def test_a_request_within_its_budget_is_answered_through_call(
    registered: Path, settings: Settings
) -> None:
    predictor = FraudPredictor(request_timeout=30.0, settings=settings)
    predictor.load()

    response, headers = asyncio.run(predictor({"instances": [dict.fromkeys(FEATURES, 0.0)]}))

    assert response["predictions"][0]["model_version"] == 1
    assert isinstance(headers, dict)


def test_a_model_with_nan_weights_fails_naming_its_version(
    tmp_path: Path, settings: Settings
) -> None:
    # A diverged training run: the file loads and verifies, every score is NaN.
    export = export_tiny_model(tmp_path / "nan-model", FEATURES, nan_weights=True)
    register_challenger(
        export,
        run_id=PipelineRunTracker("run-nan", settings=settings).round_run_id(0),
        settings=settings,
    )
    predictor = FraudPredictor(settings=settings)
    predictor.load()

    with pytest.raises(PredictionFailedError, match=r"model version 1 produced a non-finite"):
        asyncio.run(predictor({"instances": [dict.fromkeys(FEATURES, 0.0)]}))


def test_a_missing_feature_repo_fails_load_naming_it(
    registered: Path, tmp_path: Path, settings: Settings
) -> None:
    predictor = FraudPredictor(feature_repo=tmp_path / "no-such-repo", settings=settings)

    with pytest.raises(FeatureRepoError, match=r"no-such-repo does not exist"):
        predictor.load()

    assert not predictor.ready


def test_a_feature_repo_with_broken_yaml_fails_load_naming_the_file(
    registered: Path, tmp_path: Path, settings: Settings
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "feature_store.yaml").write_text("project: [unclosed\n")

    with pytest.raises(FeatureRepoError, match=r"repo/feature_store\.yaml is not valid YAML"):
        FraudPredictor(feature_repo=repo, settings=settings).load()


def test_a_feature_repo_never_applied_fails_load_naming_the_repo(
    registered: Path, repo_root: Path, settings: Settings
) -> None:
    # The real repo, but this KAIZEN_HOME has no Feast registry: nothing to look up.
    repo = repo_root / "feature_repo"

    with pytest.raises(FeatureRepoError, match=r"feature repo .*feature_repo: "):
        FraudPredictor(feature_repo=repo, settings=settings).load()


def test_a_failed_reload_keeps_the_working_model(
    registered: Path, tmp_path: Path, settings: Settings
) -> None:
    predictor = FraudPredictor(settings=settings)
    predictor.load()
    working = predictor.model
    predictor.feature_repo = tmp_path / "no-such-repo"

    with pytest.raises(FeatureRepoError):
        predictor.load()

    assert predictor.ready
    assert predictor.model is working
    assert predictor.features == FEATURES


def test_a_non_json_body_is_400_naming_the_content_type(
    registered: Path, settings: Settings
) -> None:
    predictor = FraudPredictor(settings=settings)
    predictor.load()

    with pytest.raises(InvalidInput, match=r"Content-Type: application/json, got .*text/plain"):
        asyncio.run(predictor.preprocess(b"{}", {"content-type": "text/plain"}))


def test_json_with_a_charset_is_read_as_json(registered: Path, settings: Settings) -> None:
    # KServe decodes only an exact "application/json" and passes anything else on as bytes.
    predictor = FraudPredictor(settings=settings)
    predictor.load()
    body = json.dumps({"instances": [dict.fromkeys(FEATURES, 0.0)]}).encode()
    headers = {"content-type": "application/json; charset=utf-8"}

    matrix = asyncio.run(predictor.preprocess(body, headers))

    assert isinstance(matrix, np.ndarray)
    assert matrix.tolist() == [[0.0, 0.0, 0.0]]
    with pytest.raises(InvalidInput, match=r"Unrecognized request format: .*line 1 column 2"):
        asyncio.run(predictor.preprocess(b"{,", headers))


def test_a_non_positive_request_timeout_is_refused(settings: Settings) -> None:
    with pytest.raises(ValueError, match="request_timeout must be positive seconds"):
        FraudPredictor(request_timeout=0.0, settings=settings)


def test_the_server_and_the_predictor_agree_on_the_default_model_name() -> None:
    # server.py repeats the name so that importing it does not import KServe.
    assert server.DEFAULT_MODEL_NAME == predictor_module.DEFAULT_MODEL_NAME
