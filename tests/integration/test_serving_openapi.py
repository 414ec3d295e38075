"""Schemathesis over the server's own OpenAPI: no generated request gets a 5xx.

The server runs with a real Feast repo (materialized over a small history), so generated
entity requests go through the online store, and generated feature vectors through Keras.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.support.serving import (
    ServerProcess,
    export_tiny_model,
    http_call,
    materialize_history,
    register,
)

SERVER_MODULE = "kaizen.serving.server"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The real feature repo, a model on its features, served with entity lookups."""
    home = tmp_path_factory.mktemp("openapi-home")
    feast = materialize_history(home)
    names, repo = feast.names, feast.repo
    export = export_tiny_model(tmp_path_factory.mktemp("openapi-export") / "model", names)
    register(home, export, "openapi-run", names)
    args = ["--feature-repo", str(repo), "--max-batch", "16"]
    with ServerProcess(home, args, module=SERVER_MODULE) as server:
        yield server


# Every operation the server offers; the schema must document exactly these.
OPERATIONS = [
    ("GET", "/"),
    ("GET", "/metrics"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{model_name}"),
    ("POST", "/v1/models/{model_name}:predict"),
    ("POST", "/v1/models/fraud-detector/feedback"),
    ("GET", "/v2"),
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", "/v2/models"),
    ("GET", "/v2/models/{model_name}"),
    ("GET", "/v2/models/{model_name}/ready"),
    ("POST", "/v2/models/{model_name}/infer"),
]
# Examples per operation and mode: enough to reach every branch of both bodies, few enough
# to keep the whole file near a minute (most of which is the Feast and model setup).
EXAMPLES = {"POST": 60, "GET": 10}


@pytest.fixture(scope="module")
def api_schema(served: ServerProcess) -> Any:
    return schemathesis.openapi.from_url(f"http://127.0.0.1:{served.port}/openapi.json")


def test_the_schema_documents_the_real_request_bodies(served: ServerProcess) -> None:
    status, document = http_call(served.port, "/openapi.json")

    assert status == 200
    offered = sorted(
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    )
    # Not offered: repository load/unload (any client could unload the model), and the
    # versions/<v> and :explain routes KServe answers 501.
    assert offered == sorted(OPERATIONS)
    schemas = document["components"]["schemas"]
    predict = document["paths"]["/v1/models/{model_name}:predict"]["post"]
    assert predict["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/V1PredictRequest"
    }
    instances = schemas["V1PredictRequest"]["properties"]["instances"]
    assert instances["maxItems"] == 16
    assert len(instances["items"]["oneOf"]) == 2
    assert set(schemas["EntityRequest"]["required"]) == {"customer_id", "merchant_id", "amount"}
    assert schemas["FeatureVector"]["additionalProperties"] is False
    assert len(schemas["FeatureVector"]["required"]) > 3
    infer = document["paths"]["/v2/models/{model_name}/infer"]["post"]
    assert infer["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/V2InferRequest"
    }
    parameters = {p["name"]: p for p in predict["parameters"]}
    assert parameters["model_name"]["schema"]["enum"] == ["fraud-detector"]


# Negative (schema-violating) requests only exist where there is input to violate.
CASES = [
    pytest.param(
        method,
        path,
        mode,
        id=f"{method} {path} {mode.value}",
        # Positive cases run in `make test`; the schema-violating ones in `make test-all`.
        marks=[pytest.mark.slow] if mode is GenerationMode.NEGATIVE else [],
    )
    for method, path in OPERATIONS
    for mode in GenerationMode
    if mode is GenerationMode.POSITIVE or "{model_name}" in path or path.endswith("/feedback")
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_no_generated_request_gets_a_server_error(
    api_schema: Any, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]
    answers: list[str] = []

    @hypothesis.settings(
        max_examples=EXAMPLES[method],
        deadline=None,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def no_server_error(case: Any) -> None:
        response = case.call(timeout=30)
        answers.append(response.text)
        case.validate_response(response, checks=[not_a_server_error])
        assert "Traceback" not in response.text

    no_server_error()

    assert answers
