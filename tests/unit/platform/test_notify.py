"""Notifications against a real HTTP server on 127.0.0.1."""

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kaizen.platform.notify import Notification, notify, redact_url


class _Hook:
    def __init__(self, status: int) -> None:
        self.status = status
        self.bodies: list[dict[str, object]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                hook.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(hook.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/secret-token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook(request: pytest.FixtureRequest) -> Iterator[_Hook]:
    server = _Hook(getattr(request, "param", 200))
    yield server
    server.close()


def _note(state: str = "SUCCEEDED") -> Notification:
    return Notification(pipeline="kaizen-training", run="r1", state=state, message="done")


def test_posts_json_to_webhook(hook: _Hook) -> None:
    record = notify(_note(), hook.url)
    assert record.delivered and record.attempts == 1
    assert hook.bodies[0]["state"] == "SUCCEEDED"
    assert hook.bodies[0]["pipeline"] == "kaizen-training"
    assert "secret-token" not in str(record.webhook)


@pytest.mark.parametrize("hook", [500], indirect=True)
def test_server_errors_are_retried_then_recorded(hook: _Hook) -> None:
    record = notify(_note("FAILED"), hook.url, attempts=3, backoff_s=0.01)
    assert not record.delivered
    assert record.attempts == 3 and len(hook.bodies) == 3
    assert record.error == "webhook answered HTTP 500"


@pytest.mark.parametrize("hook", [404], indirect=True)
def test_client_errors_are_not_retried(hook: _Hook) -> None:
    record = notify(_note(), hook.url, attempts=3, backoff_s=0.01)
    assert record.attempts == 1 and record.error == "webhook answered HTTP 404"


def test_unreachable_webhook_is_recorded_not_raised() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    record = notify(_note(), f"http://127.0.0.1:{port}/x", attempts=2, backoff_s=0.01)
    assert not record.delivered
    assert record.error is not None and record.error.startswith("webhook unreachable")


def test_without_webhook_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="kaizen.notify"):
        record = notify(_note("FAILED"), None)
    assert not record.delivered and record.attempts == 0
    assert "kaizen-training run r1 FAILED" in caplog.text


def test_redaction_hides_path_and_credentials() -> None:
    assert (
        redact_url("https://user:pw@hooks.example.com/services/T0/B0/xyz")
        == "https://hooks.example.com/…"
    )
