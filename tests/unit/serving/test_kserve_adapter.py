"""The KServe adapter's parts still work against the real KServe (its version check is in
tests/unit/platform/test_library_versions.py).

Everything runs in process against the real KServe: its RESTServer calling the hooks the
adapter forwards, its V1/V2 handlers behind the adapter's routes (through FastAPI's test
client), the lenient data plane. tests/integration/test_serving_server.py serves a real
model over HTTP on top of this.
"""

from __future__ import annotations

import asyncio
import logging
import math
import warnings
from types import SimpleNamespace
from typing import Any

import kserve
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kaizen.platform import library_versions
from kaizen.platform.library_versions import UnsupportedLibraryVersionError
from kaizen.serving import kserve_adapter

MODEL = "echo"


def test_the_servers_way_in_checks_the_kserve_version_before_it_builds_anything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(library_versions, "installed_version", lambda library: "0.22.0")
    with pytest.raises(UnsupportedLibraryVersionError, match=r"kserve 0\.22\.0 is installed"):
        kserve_adapter.new_model_server(http_port=0, grace_period=1)


class Echo(kserve.Model):
    """A ready model that answers each V1 instance with itself."""

    def __init__(self) -> None:
        super().__init__(MODEL)
        self.ready = True
        self.seen: list[Any] = []

    async def predict(self, payload: Any, headers: Any = None) -> Any:
        self.seen.append(payload)
        return {"predictions": [math.isnan(value) for value in payload["instances"]]}


def _model_server(model: kserve.Model) -> Any:
    model_server = kserve_adapter.new_model_server(http_port=8080, grace_period=1)

    async def register() -> None:  # as the server does, inside its running event loop
        kserve_adapter.register_models(model_server, [model])

    asyncio.run(register())
    return model_server


def test_the_model_server_has_the_lenient_data_plane_and_no_trace_lines() -> None:
    model = Echo()
    model_server = _model_server(model)

    assert logging.getLogger("kserve.trace").level == logging.WARNING
    assert model_server.registered_models.get_model(MODEL) is model
    assert model_server.dataplane.model_registry is model_server.registered_models
    assert model_server.dataplane.metadata()["extensions"] == []


def test_restservers_hooks_are_called_in_order_and_serve_with_our_server() -> None:
    import uvicorn

    calls: list[str] = []

    class Recorder(kserve_adapter.rest_server_base()):  # type: ignore[misc]
        def add_middlewares(self, app: Any) -> None:
            calls.append("middlewares")

        def register_endpoints(self, app: Any) -> None:
            calls.append("endpoints")

        def add_exception_handlers(self, app: Any) -> None:
            calls.append("exception handlers")

    class Server(uvicorn.Server):
        pass

    rest = Recorder(
        _model_server(Echo()),
        host="127.0.0.1",
        port=8123,
        access_log=False,
        grace_period=3,
        server_class=Server,
    )
    rest.create_application()  # what KServe's start() does before it serves

    assert calls == ["middlewares", "endpoints", "exception handlers"]
    assert isinstance(rest.uvicorn_server, Server)
    assert rest.uvicorn_server.config is rest.config
    assert (rest.config.host, rest.config.port) == ("127.0.0.1", 8123)
    assert rest.config.timeout_graceful_shutdown == 3


@pytest.fixture
def served() -> SimpleNamespace:
    model = Echo()
    model_server = _model_server(model)
    readiness: list[str] = []

    async def server_ready() -> dict[str, bool]:
        readiness.append("server")
        return {"ready": True}

    async def model_ready(model_name: str) -> dict[str, Any]:
        readiness.append(model_name)
        return {"name": model_name, "ready": True}

    routers = kserve_adapter.kserve_routers(
        model_server.dataplane,
        model_server.model_repository_extension,
        server_ready=server_ready,
        model_ready=model_ready,
    )
    app = FastAPI()
    for router in routers:
        app.include_router(router)
    return SimpleNamespace(
        client=TestClient(app), routers=routers, model=model, readiness=readiness
    )


def test_kserves_routes_are_served_without_the_ones_left_out(served: SimpleNamespace) -> None:
    routes = {
        (route.path, method)
        for router in served.routers
        for route in router.routes
        for method in route.methods
    }
    assert routes == {
        ("/", "GET"),
        ("/metrics", "GET"),
        ("/v1/models", "GET"),
        ("/v1/models/{model_name}", "GET"),
        ("/v1/models/{model_name}:predict", "POST"),
        ("/v2", "GET"),
        ("/v2/health/live", "GET"),
        ("/v2/health/ready", "GET"),
        ("/v2/models", "GET"),
        ("/v2/models/{model_name}", "GET"),
        ("/v2/models/{model_name}/ready", "GET"),
        ("/v2/models/{model_name}/infer", "POST"),
    }
    schema = served.client.get("/openapi.json").json()
    parameters = [
        parameter["name"]
        for path in ("/v2/models/{model_name}", "/v2/models/{model_name}/infer")
        for operation in schema["paths"][path].values()
        for parameter in operation.get("parameters", [])
    ]
    assert "model_version" not in parameters


def test_kserves_handlers_answer_through_the_routes(served: SimpleNamespace) -> None:
    test, model = served.client, served.model

    assert test.get("/").json() == {"status": "alive"}
    assert test.get("/v2/health/live").json() == {"live": True}
    assert test.get("/v1/models").json() == {"models": [MODEL]}
    assert test.get("/v2/models").json() == {"models": [MODEL]}
    assert test.get("/v2").json()["extensions"] == []
    assert test.get(f"/v2/models/{MODEL}").json()["name"] == MODEL
    assert test.get("/v2/health/ready").json() == {"ready": True}
    assert test.get(f"/v2/models/{MODEL}/ready").json() == {"name": MODEL, "ready": True}
    assert served.readiness == ["server", MODEL]
    assert test.get("/metrics").status_code == 200

    answer = test.post(
        f"/v1/models/{MODEL}:predict",
        content=b'{"instances": [1.5, NaN]}',
        headers={"content-type": "application/json"},
    )

    # KServe's strict parser refuses NaN; the adapter's data plane lets it reach the model.
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": [False, True]}
    assert model.seen[-1]["instances"][0] == 1.5


def test_a_body_that_is_not_json_keeps_kserves_message() -> None:
    from kserve.errors import InvalidInput

    dataplane = _model_server(Echo()).dataplane
    with pytest.raises(InvalidInput, match="Unrecognized request format"):
        dataplane.decode(b"{not json", {"content-type": "application/json"})


def test_logging_and_warnings_match_kserves() -> None:
    from kserve.logging import KSERVE_LOGGER_FORMAT

    formatter = kserve_adapter.log_formatter()
    assert formatter._fmt == KSERVE_LOGGER_FORMAT
    with warnings.catch_warnings():
        kserve_adapter.quiet_known_warnings()
        assert any(
            "ORJSONResponse is deprecated" in str(getattr(entry[1], "pattern", ""))
            for entry in warnings.filters
        )
    assert callable(kserve_adapter.event_loop_factory())
