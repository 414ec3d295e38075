"""``python -m kaizen.serving.server`` on 127.0.0.1: limits, errors, health and a graceful stop.

Every server here is a real process serving a real registered Keras model. Servers that
several tests share start together, in parallel, once per module.

Run as a module, this file is itself a server: the production models plus ``exploding``, a
model with a bug (its predict raises with internals in the message), which shows what a
client sees of an unexpected exception.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kserve
import pytest

from tests.support.serving import (
    ServerProcess,
    export_tiny_model,
    free_port,
    http_call,
    metric,
    register,
)

SERVER_MODULE = "kaizen.serving.server"
THIS_MODULE = "tests.integration.test_serving_limits"
FEATURES = ["amount_zscore", "merchant_risk", "velocity_1h"]
MODEL = "fraud-detector"
PREDICT = f"/v1/models/{MODEL}:predict"
INFER = f"/v2/models/{MODEL}/infer"
VECTOR = {"amount_zscore": 0.1, "merchant_risk": -0.2, "velocity_1h": 0.0}
BODY_LIMIT = 4096
SECRET = "/srv/secret/internals.py"
LOAD_GATE_ENV = "KAIZEN_TEST_LOAD_GATE"


class ExplodingModel(kserve.Model):
    """A model with a bug: its predict raises, naming internals a client must never see."""

    def __init__(self) -> None:
        super().__init__("exploding")

    def load(self) -> bool:
        self.ready = True
        return True

    async def predict(
        self,
        payload: Any,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> Any:
        raise RuntimeError(f"lookup table missing at {SECRET}")


def _serve_with_an_exploding_model(argv: list[str]) -> None:
    # The main of a server program: like the real one, it reads the settings (KAIZEN_HOME).
    from kaizen.platform.settings import load_settings
    from kaizen.serving.server import build_models, parse_args, serve

    config = parse_args(argv)
    serve([*build_models(config, load_settings()), ExplodingModel()], config)


def _serve_held_in_loading(argv: list[str], gate: Path) -> None:
    """The real server's main, with each model's load held until ``gate`` exists, so a test
    observes readiness while loading whatever the machine's speed."""
    from kaizen.serving import server

    build_models = server.build_models

    def held_models(config: Any, settings: Any) -> list[kserve.Model]:
        models = build_models(config, settings)
        for model in models:
            load = model.load

            def held(load: Any = load) -> Any:
                while not gate.exists():
                    time.sleep(0.05)
                return load()

            model.load = held  # type: ignore[method-assign]
        return models

    server.build_models = held_models
    server.main(argv)


def _raw_request(port: int, head: list[str], body: bytes = b"") -> tuple[int, Any]:
    """Send exactly these bytes (no client-side framing help); return the answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.connect()
    assert connection.sock is not None
    connection.sock.sendall("\r\n".join([*head, "", ""]).encode() + body)
    response = http.client.HTTPResponse(connection.sock, method="POST")
    response.begin()
    try:
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A registry with a good champion, and one whose champion has NaN weights."""
    good = tmp_path_factory.mktemp("limits-home")
    export = export_tiny_model(tmp_path_factory.mktemp("limits-export") / "model", FEATURES)
    register(good, export, "limits-run", FEATURES)
    broken = tmp_path_factory.mktemp("nan-home")
    nan_export = tmp_path_factory.mktemp("nan-export") / "model"
    export_tiny_model(nan_export, FEATURES, nan_weights=True)
    info = register(broken, nan_export, "nan-run", FEATURES)
    return SimpleNamespace(good=good, nan=broken, nan_version=info.version)


@pytest.fixture(scope="module")
def servers(homes: SimpleNamespace) -> Iterator[SimpleNamespace]:
    """Three servers, started side by side: limits, NaN model, tiny timeout plus a bug."""
    processes = {
        "limits": ServerProcess(
            homes.good,
            ["--max-batch", "8", "--max-body-bytes", str(BODY_LIMIT)],
            module=SERVER_MODULE,
        ),
        "nan": ServerProcess(homes.nan, ["--access-log"], module=SERVER_MODULE),
        # Validating 256 instances takes ~1 ms, ten times this budget, so every full batch
        # runs out of time before it is scored.
        "timeout": ServerProcess(
            homes.good, ["--request-timeout", "0.0001", "--max-batch", "256"], module=THIS_MODULE
        ),
    }
    with ExitStack() as stack, ThreadPoolExecutor(len(processes)) as pool:
        for server in pool.map(stack.enter_context, processes.values()):
            assert server.process is not None
        yield SimpleNamespace(**processes)
        # Stop them together rather than one after another.
        for server in processes.values():
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)


def test_a_body_over_the_limit_by_content_length_is_refused_before_it_is_sent(
    servers: SimpleNamespace,
) -> None:
    # Only the headers go out: the 413 must not wait for the body.
    status, answer = _raw_request(
        servers.limits.port,
        [
            f"POST {PREDICT} HTTP/1.1",
            "Host: 127.0.0.1",
            "Content-Type: application/json",
            "Content-Length: 10000000",
        ],
    )

    assert status == 413
    assert answer == {"error": "request body is 10000000 bytes; the limit is 4096 bytes"}


def test_a_chunked_body_over_the_limit_is_refused_without_reading_the_rest(
    servers: SimpleNamespace,
) -> None:
    # Two chunks past the limit and no final chunk: the server answers while the upload
    # is still open, so it never waited for (or buffered) the rest.
    head = [
        f"POST {PREDICT} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked",
    ]
    before = metric(
        servers.limits.port, "kaizen_serving_http_rejections_total", reason="body_too_large"
    )

    status, answer = _raw_request(servers.limits.port, head, _chunk(b" " * 3000) * 2)

    assert status == 413
    assert answer == {"error": "request body is more than 4096 bytes; the limit is 4096 bytes"}
    after = metric(
        servers.limits.port, "kaizen_serving_http_rejections_total", reason="body_too_large"
    )
    assert after == before + 1


def test_a_chunked_body_within_the_limit_is_scored(servers: SimpleNamespace) -> None:
    body = json.dumps({"instances": [VECTOR, VECTOR]}).encode()
    head = [
        f"POST {PREDICT} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked",
    ]

    status, answer = _raw_request(
        servers.limits.port, head, _chunk(body[:10]) + _chunk(body[10:]) + b"0\r\n\r\n"
    )

    assert status == 200
    assert len(answer["predictions"]) == 2


def test_a_batch_over_the_limit_is_400_naming_it(servers: SimpleNamespace) -> None:
    v1 = http_call(servers.limits.port, PREDICT, {"instances": [VECTOR] * 9})
    v2 = http_call(
        servers.limits.port,
        INFER,
        {"inputs": [{"name": "features", "shape": [9, 3], "datatype": "FP32", "data": [0] * 27}]},
    )

    assert v1 == (400, {"error": "instances: batch of 9 exceeds the limit of 8"})
    assert v2 == (400, {"error": "inputs.features: batch of 9 rows is outside 1..8"})


@pytest.mark.parametrize(
    ("path", "body", "status", "expected"),
    [
        (PREDICT, {"instances": [{**VECTOR, "velocity_1h": 1e300}]}, 400, "within ±1e+09"),
        (PREDICT, {"instances": [VECTOR], "extra": 1}, 400, "unknown field(s) ['extra']"),
        (INFER, {"inputs": "features"}, 400, "inputs: Input should be a valid list"),
        (INFER, {"id": 3, "inputs": []}, 400, "id: Input should be a valid string"),
        (
            INFER,
            {"inputs": [{"name": "features", "shape": [1, "x"], "datatype": "FP32", "data": []}]},
            400,
            "inputs[0].shape[1]: Input should be a valid integer",
        ),
        (INFER, b'{"inputs": [', 400, "request body: invalid JSON at character 12"),
        ("/v1/models/nope:predict", {"instances": [VECTOR]}, 404, "nope does not exist"),
        ("/v2/repository/models/fraud-detector/unload", {}, 404, "Not Found"),
        ("/v2/health/live", {}, 405, "Method Not Allowed"),
    ],
)
def test_error_answers_name_the_problem_and_carry_no_trace(
    servers: SimpleNamespace, path: str, body: Any, status: int, expected: str
) -> None:
    raw = body if isinstance(body, bytes) else None

    got, answer = http_call(servers.limits.port, path, None if raw else body, raw=raw)

    assert got == status
    assert list(answer) == ["error"]
    assert expected in answer["error"]
    assert "Traceback" not in answer["error"]
    assert 'File "' not in answer["error"]


def test_liveness_and_readiness_of_a_loaded_server(servers: SimpleNamespace) -> None:
    port = servers.limits.port

    assert http_call(port, "/") == (200, {"status": "alive"})
    assert http_call(port, "/v2/health/live") == (200, {"live": True})
    assert http_call(port, "/v2/health/ready") == (200, {"ready": True})
    assert http_call(port, f"/v2/models/{MODEL}/ready") == (200, {"name": MODEL, "ready": True})
    assert http_call(port, f"/v1/models/{MODEL}") == (200, {"name": MODEL, "ready": True})
    assert http_call(port, "/v2/models/other/ready")[0] == 404


def test_requests_are_not_logged_one_by_one_unless_the_access_log_is_asked_for(
    servers: SimpleNamespace,
) -> None:
    # One line per request (uvicorn's access log, KServe's two timing lines) is off by
    # default: it costs CPU at any real rate, and /metrics counts and times every request.
    quiet, logged = servers.limits, servers.nan
    before = {server.port: server.log_path.stat().st_size for server in (quiet, logged)}

    for _ in range(3):
        assert http_call(quiet.port, PREDICT, {"instances": [VECTOR]})[0] == 200
    assert http_call(quiet.port, "/v2/health/live")[0] == 200
    assert http_call(logged.port, "/v2/health/live")[0] == 200
    # A marker the quiet server does log (a client error is one line), sent last: once it is
    # in the log, every line the requests before it wrote is there too.
    marker = {"inputs": "quiet-server-marker"}
    assert http_call(quiet.port, INFER, marker)[0] == 400

    def since_start(server: ServerProcess) -> str:
        with server.log_path.open("rb") as log:
            log.seek(before[server.port])
            return log.read().decode(errors="replace")

    _wait_for(lambda: f"400 on {INFER}" in since_start(quiet), 60, "the quiet server's marker")
    _wait_for(
        lambda: '"GET /v2/health/live HTTP/1.1" 200' in since_start(logged),
        60,
        "the access log line",
    )
    assert "predict" not in since_start(quiet)
    assert "/v2/health/live" not in since_start(quiet)


def test_a_full_batch_past_the_time_budget_is_504_and_the_server_carries_on(
    servers: SimpleNamespace,
) -> None:
    port = servers.timeout.port
    before = metric(port, "kaizen_serving_http_rejections_total", reason="timeout")

    status, answer = http_call(port, PREDICT, {"instances": [VECTOR] * 256})

    assert (status, answer) == (504, {"error": "request timed out after 0.0001 s during scoring"})
    assert metric(port, "kaizen_serving_http_rejections_total", reason="timeout") == before + 1
    assert http_call(port, "/v2/health/ready") == (200, {"ready": True})


def test_an_unexpected_exception_is_500_with_a_request_id_and_the_trace_stays_in_the_log(
    servers: SimpleNamespace,
) -> None:
    port = servers.timeout.port

    status, answer = http_call(
        port, "/v1/models/exploding:predict", {"instances": [1]}, headers={"X-Request-Id": "req-42"}
    )

    assert status == 500
    assert answer == {"error": "internal error; see the server log (request id req-42)"}
    log = servers.timeout.log_path.read_text(errors="replace")
    assert "internal error (request id req-42)" in log
    assert f"RuntimeError: lookup table missing at {SECRET}" in log
    assert metric(port, "kaizen_serving_http_rejections_total", reason="internal_error") >= 1


def test_a_model_with_nan_weights_is_500_naming_its_version(
    servers: SimpleNamespace, homes: SimpleNamespace
) -> None:
    port = servers.nan.port
    tensor = {"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [0, 0, 0]}

    v1 = http_call(port, PREDICT, {"instances": [VECTOR]})
    v2 = http_call(port, INFER, {"inputs": [tensor]})

    for status, answer in (v1, v2):
        assert status == 500
        assert list(answer) == ["error"]
        assert f"model version {homes.nan_version} produced a non-finite score" in answer["error"]
        assert "Traceback" not in answer["error"]
    assert metric(port, "kaizen_serving_http_rejections_total", reason="prediction_failed") == 2


def _start(
    home: Path, args: list[str], *, module: str = SERVER_MODULE, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    log_path = home / f"server-{port}.log"
    home.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--http-port", str(port), *args],
            env={**os.environ, "KAIZEN_HOME": str(home), **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return process, port, log_path


def _wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
        except OSError:
            result = None
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_readiness_waits_for_the_model_and_sigterm_drains_then_finishes_in_flight_requests(
    homes: SimpleNamespace, tmp_path: Path
) -> None:
    gate = tmp_path / "load-gate"
    process, port, log_path = _start(
        homes.good, ["--drain-seconds", "4"], module=THIS_MODULE, env={LOAD_GATE_ENV: str(gate)}
    )
    try:
        # Loading (held until the gate opens): live at once, ready only once loaded and warm.
        _wait_for(lambda: http_call(port, "/v2/health/live")[0] == 200, 120, "liveness")
        assert http_call(port, "/v2/health/ready")[0] == 503
        assert http_call(port, f"/v2/models/{MODEL}/ready")[0] == 503
        assert http_call(port, PREDICT, {"instances": [VECTOR]})[0] == 503
        gate.touch()
        _wait_for(lambda: http_call(port, "/v2/health/ready")[0] == 200, 120, "readiness")

        # A request in flight: headers and half the body sent, the rest held back.
        body = json.dumps({"instances": [VECTOR]}).encode()
        in_flight = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        in_flight.putrequest("POST", PREDICT)
        in_flight.putheader("Content-Type", "application/json")
        in_flight.putheader("Transfer-Encoding", "chunked")
        in_flight.endheaders()
        in_flight.send(_chunk(body[:10]))
        _wait_for(
            lambda: (metric(port, "kaizen_serving_http_requests_in_flight") or 0) >= 1,
            60,
            "in flight",
        )

        process.send_signal(signal.SIGTERM)

        # Draining: not ready, still live, still serving.
        _wait_for(lambda: http_call(port, "/v2/health/ready")[0] == 503, 60, "draining")
        assert "draining" in http_call(port, "/v2/health/ready")[1]["error"]
        assert http_call(port, "/v2/health/live") == (200, {"live": True})
        assert http_call(port, PREDICT, {"instances": [VECTOR]})[0] == 200
        assert metric(port, "kaizen_serving_http_rejections_total", reason="draining") >= 1

        # After the drain the listener closes while the in-flight request is still open...
        def refused() -> bool:
            try:
                http_call(port, "/v2/health/live", timeout=2)
            except OSError:
                return True
            return False

        _wait_for(refused, 60, "the listener to close")
        assert process.poll() is None

        # ...which then completes, and the process exits cleanly.
        in_flight.send(_chunk(body[10:]) + b"0\r\n\r\n")
        response = in_flight.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["predictions"][0]["model_version"] == 1
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert "stopped cleanly" in log_path.read_text(errors="replace")


def test_a_model_that_fails_to_load_exits_1_naming_the_problem(tmp_path: Path) -> None:
    process, _, log_path = _start(tmp_path / "empty-home", [])

    assert process.wait(timeout=90) == 1
    log = log_path.read_text(errors="replace")
    assert "kaizen serving stopped: ModelVersionNotFoundError" in log


def test_bad_options_exit_2_naming_the_option() -> None:
    result = subprocess.run(
        [sys.executable, "-m", SERVER_MODULE, "--max-body-bytes", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "--max-body-bytes: max_body_bytes must be at least 1, got 0" in result.stderr


if __name__ == "__main__":
    if os.environ.get(LOAD_GATE_ENV):
        _serve_held_in_loading(sys.argv[1:], Path(os.environ[LOAD_GATE_ENV]))
    else:
        _serve_with_an_exploding_model(sys.argv[1:])
