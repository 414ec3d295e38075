"""The prediction client against a real HTTP server on 127.0.0.1 answering as told."""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kaizen.serving.client import (
    BadResponseError,
    PredictClient,
    ServerRejectedError,
    ServerUnavailableError,
    entity_instance,
    parse_timestamp,
    tensor_rows,
    vector_instances,
)
from tests.support.serving import free_port

V1_OK = {"predictions": [{"fraud_probability": 0.92, "is_fraud": True, "model_version": 7}]}
V2_OK = {
    "model_name": "fraud-detector",
    "model_version": "7",
    "id": "r1",
    "outputs": [
        {"name": "fraud_probability", "shape": [2], "datatype": "FP32", "data": [0.1, 0.8]}
    ],
}


@dataclass
class Script:
    """What the server answers next, and what it received."""

    status: int = 200
    body: bytes = json.dumps(V1_OK).encode()
    content_type: str = "application/json"
    delay: float = 0.0
    received: list[tuple[str, Any]] = field(default_factory=list)

    def answer(self, status: int, body: Any, content_type: str = "application/json") -> None:
        self.status = status
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.content_type = content_type


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            script.received.append((self.path, json.loads(self.rfile.read(length))))
            time.sleep(script.delay)
            # A client that timed out has hung up; that is the point of the test.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send_response(script.status)
                self.send_header("Content-Type", script.content_type)
                self.send_header("Content-Length", str(len(script.body)))
                self.end_headers()
                self.wfile.write(script.body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def script(server: tuple[str, Script]) -> Iterator[Script]:
    _, state = server
    state.answer(200, V1_OK)
    state.delay = 0.0
    state.received.clear()
    yield state


def test_v1_sends_instances_to_the_model_route_and_reads_predictions(
    server: tuple[str, Script], script: Script
) -> None:
    client = PredictClient(server[0], "fraud-detector")
    instance = entity_instance("C1", "M1", 12.5, "2026-01-31T12:00:00Z")

    predictions, body = client.predict_v1([instance])

    assert script.received == [
        (
            "/v1/models/fraud-detector:predict",
            {
                "instances": [
                    {
                        "customer_id": "C1",
                        "merchant_id": "M1",
                        "amount": 12.5,
                        "event_timestamp": "2026-01-31T12:00:00+00:00",
                    }
                ]
            },
        )
    ]
    assert body == V1_OK
    assert predictions[0].fraud_probability == pytest.approx(0.92)
    assert predictions[0].is_fraud is True
    assert predictions[0].model_version == "7"


def test_v2_sends_one_fp32_tensor_in_row_order(server: tuple[str, Script], script: Script) -> None:
    script.answer(200, V2_OK)
    client = PredictClient(server[0], "fraud-detector")

    predictions, _ = client.predict_v2([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])

    path, sent = script.received[0]
    assert path == "/v2/models/fraud-detector/infer"
    assert sent["inputs"] == [
        {"name": "features", "datatype": "FP32", "shape": [2, 3], "data": [1, 2, 3, 4, 5, 6]}
    ]
    assert [p.fraud_probability for p in predictions] == pytest.approx([0.1, 0.8])
    assert [p.is_fraud for p in predictions] == [None, None]
    assert {p.model_version for p in predictions} == {"7"}


def test_nothing_listening_says_how_to_start_a_server() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(ServerUnavailableError) as caught:
        PredictClient(url).predict_v1([{"a": 1.0}])

    assert str(caught.value) == f"no server at {url}; start one with `kaizen serve`"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, {"error": "instances[0].amount: expected a number, got str 'x'"}, "amount"),
        (404, {"detail": "Model with name nope does not exist."}, "does not exist"),
        (413, {"error": "request body over the 4096-byte limit"}, "4096-byte limit"),
        (504, {"error": "request timed out after 2 s during scoring"}, "timed out"),
    ],
)
def test_an_error_status_carries_the_servers_own_message(
    server: tuple[str, Script], script: Script, status: int, body: Any, expected: str
) -> None:
    script.answer(status, body)

    with pytest.raises(ServerRejectedError) as caught:
        PredictClient(server[0]).predict_v1([{"a": 1.0}])

    assert caught.value.status == status
    assert str(caught.value).startswith(f"server answered {status}: ")
    assert expected in str(caught.value)


def test_an_error_page_that_is_not_json_is_shown_as_text(
    server: tuple[str, Script], script: Script
) -> None:
    script.answer(502, b"bad gateway from the proxy", "text/plain")

    with pytest.raises(ServerRejectedError, match=r"502 .*bad gateway from the proxy"):
        PredictClient(server[0]).predict_v1([{"a": 1.0}])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"<html>not json</html>", "not JSON"),
        (json.dumps({"result": 1}).encode(), "without V1 predictions"),
        (json.dumps({"predictions": [{"fraud_probability": 0.5}]}).encode(), "without V1"),
    ],
)
def test_a_200_that_is_not_a_prediction_is_reported(
    server: tuple[str, Script], script: Script, body: bytes, expected: str
) -> None:
    script.answer(200, body)

    with pytest.raises(BadResponseError, match=expected):
        PredictClient(server[0]).predict_v1([{"a": 1.0}])


def test_a_v2_answer_without_probabilities_is_reported(
    server: tuple[str, Script], script: Script
) -> None:
    script.answer(200, {"outputs": [{"name": "other", "data": [1]}]})

    with pytest.raises(BadResponseError, match="fraud_probability"):
        PredictClient(server[0]).predict_v2([[1.0]])


def test_a_server_too_slow_to_answer_is_a_timeout(
    server: tuple[str, Script], script: Script
) -> None:
    script.delay = 1.0

    with pytest.raises(ServerUnavailableError, match=r"no answer from .* within 0.2 s"):
        PredictClient(server[0], timeout=0.2).predict_v1([{"a": 1.0}])


@pytest.mark.parametrize(
    ("url", "model"),
    [("127.0.0.1:8080", "fraud-detector"), ("ftp://host", "fraud-detector"), (None, "a/b")],
)
def test_a_url_or_model_name_that_cannot_work_is_refused_up_front(
    url: str | None, model: str
) -> None:
    with pytest.raises(ValueError):
        PredictClient(url or "http://127.0.0.1:8080", model)


def test_timestamps_need_an_offset_and_are_sent_in_utc() -> None:
    assert parse_timestamp("2026-01-31T14:00:00+02:00") == "2026-01-31T12:00:00+00:00"
    with pytest.raises(ValueError, match="UTC offset"):
        parse_timestamp("2026-01-31T12:00:00")
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_timestamp("yesterday")


def test_entity_requests_refuse_empty_ids_and_non_finite_amounts() -> None:
    assert "event_timestamp" not in entity_instance("C1", "M1", 3.0)
    with pytest.raises(ValueError, match="customer id is empty"):
        entity_instance(" ", "M1", 3.0)
    with pytest.raises(ValueError, match="finite"):
        entity_instance("C1", "M1", math.nan)


def test_vector_files_are_an_object_or_a_list_of_objects() -> None:
    assert vector_instances({"a": 1}) == [{"a": 1}]
    assert vector_instances([{"a": 1}, {"a": 2}]) == [{"a": 1}, {"a": 2}]
    with pytest.raises(ValueError, match="object of features by name"):
        vector_instances([1.0, 2.0])
    with pytest.raises(ValueError, match="non-empty list"):
        vector_instances([])


def test_tensor_files_are_rows_of_numbers_in_model_order() -> None:
    assert tensor_rows([1, 2.5]) == [[1.0, 2.5]]
    assert tensor_rows([[1, 2], [3, 4]]) == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(ValueError, match="feature order, not names"):
        tensor_rows({"a": 1})
    with pytest.raises(ValueError, match="row 1 has 1 values but row 0 has 2"):
        tensor_rows([[1, 2], [3]])
    with pytest.raises(ValueError, match=r"row 0, value 1: expected a number, got 'x'"):
        tensor_rows([[1, "x"]])
    with pytest.raises(ValueError, match="expected a number, got True"):
        tensor_rows([True, 1])
