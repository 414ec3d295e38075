"""``python -m kaizen.serving.server`` on 127.0.0.1 serving a registered model, over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kaizen.features import online_features
from tests.support.serving import (
    ServerProcess,
    export_tiny_model,
    http_call,
    materialize_history,
    register,
)

SERVER_MODULE = "kaizen.serving.server"
FEATURES = ["amount_zscore", "merchant_risk", "velocity_1h"]
MODEL = "fraud-detector"
VECTOR = {"amount_zscore": 0.1, "merchant_risk": -0.2, "velocity_1h": 0.0}
RISKY = {"amount_zscore": 4.0, "merchant_risk": 3.0, "velocity_1h": 0.0}


def _call(port: int, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    return http_call(port, path, body, raw=raw)


def _serve(
    home: Path, export: Path, features: list[str], extra: list[str]
) -> Iterator[tuple[int, int]]:
    """Train on ``features``, register as champion in ``home``, serve; yields (port, version)."""
    export_tiny_model(export, features)
    info = register(home, export, "serving-run", features)
    with ServerProcess(home, extra, module=SERVER_MODULE) as server:
        yield server.port, info.version


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """A model on three plain features served without Feast, batch limit 8."""
    yield from _serve(
        tmp_path_factory.mktemp("serving-home"),
        tmp_path_factory.mktemp("export") / "model",
        FEATURES,
        ["--max-batch", "8"],
    )


@pytest.fixture(scope="module")
def feast_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The real feature repo materialized over a small history, and a model on its features."""
    home = tmp_path_factory.mktemp("feast-serving-home")
    feast = materialize_history(home)
    for port, version in _serve(
        home,
        tmp_path_factory.mktemp("feast-export") / "model",
        feast.names,
        ["--feature-repo", str(feast.repo)],
    ):
        yield SimpleNamespace(
            port=port, version=version, store=feast.store, names=feast.names, moment=feast.moment
        )


def test_health_and_model_readiness(server: tuple[int, int]) -> None:
    port, _ = server

    assert _call(port, "/v2/health/live") == (200, {"live": True})
    assert _call(port, "/v2/health/ready") == (200, {"ready": True})
    assert _call(port, f"/v2/models/{MODEL}/ready")[0] == 200


def test_server_metadata_promises_no_repository_extension_it_does_not_serve(
    server: tuple[int, int],
) -> None:
    port, _ = server

    status, metadata = _call(port, "/v2")

    assert status == 200
    assert metadata["extensions"] == []
    assert metadata["name"] and metadata["version"]
    # The repository extension's routes are not there: no client can unload the model.
    assert _call(port, f"/v2/repository/models/{MODEL}/unload", {})[0] == 404
    assert _call(port, f"/v2/repository/models/{MODEL}/load", {})[0] == 404


def test_model_metadata_declares_the_tensors(server: tuple[int, int]) -> None:
    port, _ = server

    status, metadata = _call(port, f"/v2/models/{MODEL}")

    assert status == 200
    assert metadata["name"] == MODEL
    assert metadata["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 3]}]
    assert metadata["outputs"] == [{"name": "fraud_probability", "datatype": "FP32", "shape": [-1]}]


def test_v1_predict_scores_feature_vectors_with_decision_and_version(
    server: tuple[int, int],
) -> None:
    port, version = server

    status, body = _call(port, f"/v1/models/{MODEL}:predict", {"instances": [VECTOR, RISKY]})

    assert status == 200
    calm, risky = body["predictions"]
    assert calm["model_version"] == risky["model_version"] == version
    assert 0.0 <= calm["fraud_probability"] < risky["fraud_probability"] <= 1.0
    assert calm["is_fraud"] == (calm["fraud_probability"] >= 0.5)
    assert risky["is_fraud"] is True


def test_v2_infer_matches_v1(server: tuple[int, int]) -> None:
    port, _ = server
    rows = [[VECTOR[f] for f in FEATURES], [RISKY[f] for f in FEATURES]]
    request = {
        "id": "req-1",
        "inputs": [
            {
                "name": "features",
                "shape": [2, 3],
                "datatype": "FP32",
                "data": [value for row in rows for value in row],
            }
        ],
    }

    status, body = _call(port, f"/v2/models/{MODEL}/infer", request)
    v1 = _call(port, f"/v1/models/{MODEL}:predict", {"instances": [VECTOR, RISKY]})[1]

    assert status == 200
    assert body["id"] == "req-1"
    (output,) = body["outputs"]
    assert output["name"] == "fraud_probability"
    assert output["shape"] == [2]
    expected = [p["fraud_probability"] for p in v1["predictions"]]
    assert output["data"] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"instances": []}, "instances: empty"),
        ({"instances": [VECTOR] * 9}, "batch of 9 exceeds the limit of 8"),
        ({"instances": [{**VECTOR, "colour": 1}]}, "instances[0]: unknown field(s) ['colour']"),
        (
            {"instances": [VECTOR, {**VECTOR, "velocity_1h": "fast"}]},
            "instances[1].velocity_1h: expected a number",
        ),
        (
            {"instances": [{"customer_id": "c-1", "merchant_id": "m-1", "amount": 3.0}]},
            "instances[0]: entity requests need the Feast online store",
        ),
    ],
)
def test_bad_v1_requests_are_400_naming_the_field(
    server: tuple[int, int], body: Any, expected: str
) -> None:
    port, _ = server

    status, answer = _call(port, f"/v1/models/{MODEL}:predict", body)

    assert status == 400
    assert expected in answer["error"]
    assert "Traceback" not in answer["error"]


def test_a_nan_token_is_400_naming_the_field(server: tuple[int, int]) -> None:
    # JSON has no NaN; the server reads the token anyway so that the answer names the field.
    port, _ = server
    raw = b'{"instances": [{"amount_zscore": 1, "merchant_risk": NaN, "velocity_1h": 0}]}'

    status, answer = _call(port, f"/v1/models/{MODEL}:predict", raw=raw)

    assert status == 400
    assert "instances[0].merchant_risk: expected a finite number, got nan" in answer["error"]


def test_malformed_json_is_400_with_the_position(server: tuple[int, int]) -> None:
    port, _ = server

    status, answer = _call(port, f"/v1/models/{MODEL}:predict", raw=b'{"instances": [{"a": 1,')

    assert status == 400
    assert "Unrecognized request format" in answer["error"]
    assert "line 1 column" in answer["error"]


@pytest.mark.parametrize(
    ("tensor", "expected"),
    [
        (
            {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [0, 0, 0]},
            "unknown tensor 'x'",
        ),
        (
            {"name": "features", "shape": [1, 2], "datatype": "FP32", "data": [0, 0]},
            "inputs.features: shape must be [n, 3]",
        ),
        (
            {"name": "features", "shape": [2, 3], "datatype": "FP32", "data": [0, 0, 0]},
            "inputs.features: data does not match shape [2, 3]",
        ),
    ],
)
def test_bad_v2_requests_are_400_naming_the_tensor(
    server: tuple[int, int], tensor: dict[str, Any], expected: str
) -> None:
    port, _ = server

    status, answer = _call(port, f"/v2/models/{MODEL}/infer", {"inputs": [tensor]})

    assert status == 400
    assert expected in answer["error"]


def _served_vectors(feast: SimpleNamespace, rows: list[dict[str, Any]]) -> list[dict[str, float]]:
    """What the online store gives for ``rows``, as full feature vectors for V1."""
    frame = online_features(feast.store, rows)
    return [{name: float(frame.loc[i, name]) for name in feast.names} for i in range(len(rows))]


def test_entity_requests_score_the_online_features_of_known_and_unknown_ids(
    feast_server: SimpleNamespace,
) -> None:
    moment = feast_server.moment.to_pydatetime()
    rows = [
        {"customer_id": "C1", "merchant_id": "M1", "amount": 60.0, "event_timestamp": moment},
        # Never seen: served as no history (stored features 0), not refused.
        {"customer_id": "NEW", "merchant_id": "NEW", "amount": 12.5, "event_timestamp": moment},
    ]
    entity_body = {"instances": [{**row, "event_timestamp": moment.isoformat()} for row in rows]}
    vectors = _served_vectors(feast_server, rows)
    path = f"/v1/models/{MODEL}:predict"

    status, by_entity = _call(feast_server.port, path, entity_body)
    _, by_vector = _call(feast_server.port, path, {"instances": vectors})

    assert status == 200
    assert vectors[0] != vectors[1]
    got = [p["fraud_probability"] for p in by_entity["predictions"]]
    expected = [p["fraud_probability"] for p in by_vector["predictions"]]
    assert got == pytest.approx(expected, abs=1e-6)
    assert {p["model_version"] for p in by_entity["predictions"]} == {feast_server.version}


def test_entity_and_vector_instances_mix_in_one_batch_in_order(
    feast_server: SimpleNamespace,
) -> None:
    moment = feast_server.moment.to_pydatetime()
    row = {"customer_id": "C2", "merchant_id": "M1", "amount": 5.0, "event_timestamp": moment}
    (vector,) = _served_vectors(feast_server, [row])
    zeros = dict.fromkeys(feast_server.names, 0.0)
    path = f"/v1/models/{MODEL}:predict"

    status, mixed = _call(
        feast_server.port,
        path,
        {"instances": [zeros, {**row, "event_timestamp": moment.isoformat()}, zeros]},
    )
    _, alone = _call(feast_server.port, path, {"instances": [zeros, vector]})

    assert status == 200
    first, middle, last = (p["fraud_probability"] for p in mixed["predictions"])
    assert first == pytest.approx(last)
    assert first == pytest.approx(alone["predictions"][0]["fraud_probability"], abs=1e-6)
    assert middle == pytest.approx(alone["predictions"][1]["fraud_probability"], abs=1e-6)
