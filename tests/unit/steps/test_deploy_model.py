"""The deploy step on the embedded backend: what the registry offers, and a local server.

The registry is a real MLflow store under the test's KAIZEN_HOME. The "server" is a real HTTP
server on 127.0.0.1 whose ``/metrics`` is written by ``prometheus_client`` from a gauge with the
name and labels ``kaizen serve`` exposes (checked below against the server's own metric), and
whose versions change as a hot reload would change them. The cluster target is covered by
tests/contract/test_deploy_inference_service.py.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from kaizen.platform.settings import Settings
from kaizen.steps.deploy_model import SERVED_VERSION_METRIC, DeployError, deploy_step
from tests.support.registry import AliasRegistry, empty_store

MODEL = "fraud-detector"


class MetricsServer:
    """``/metrics`` of a model server: the served version per variant, changed by ``on_scrape``.

    Args:
        on_scrape: called with the scrape number (1, 2, ...) and the gauge before each answer.
    """

    def __init__(self, on_scrape: Callable[[int, Gauge], None]) -> None:
        self.registry = CollectorRegistry()
        self.gauge = Gauge(
            SERVED_VERSION_METRIC,
            "Registry version each variant serves (0: none).",
            ["model_name", "variant"],
            registry=self.registry,
        )
        self.scrapes = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.scrapes += 1
                on_scrape(server.scrapes, server.gauge)
                body = generate_latest(server.registry)
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def serving(champion: int, challenger: int = 0) -> Callable[[int, Gauge], None]:
    def scrape(_: int, gauge: Gauge) -> None:
        gauge.labels(MODEL, "champion").set(champion)
        gauge.labels(MODEL, "challenger").set(challenger)

    return scrape


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return empty_store(tmp_path_factory.mktemp("mlflow-template"))


@pytest.fixture
def registry(settings: Settings, mlflow_template: Path) -> AliasRegistry:
    return AliasRegistry.create(settings, mlflow_template)


@pytest.fixture
def metrics_server() -> Iterator[list[MetricsServer]]:
    started: list[MetricsServer] = []
    yield started
    for server in started:
        server.close()


def registered(tmp_path: Path, version: Any) -> Path:
    path = tmp_path / "registered.json"
    path.write_text(json.dumps({"name": MODEL, "version": version, "aliases": []}))
    return path


def with_server(settings: Settings, url: str) -> Settings:
    return settings.model_copy(update={"deploy_server_url": url})


def test_without_a_server_the_first_version_is_recorded_as_champion(
    settings: Settings, registry: AliasRegistry, tmp_path: Path
) -> None:
    version = registry.add("champion", "challenger")
    record = deploy_step(registered(tmp_path, version), settings=settings)
    assert record == {
        "target": "local",
        "model": MODEL,
        "version": 1,
        "alias": "champion",
        "changed": False,
        "status": "recorded",
        "server": None,
    }


def test_a_later_version_is_recorded_as_challenger(
    settings: Settings, registry: AliasRegistry, tmp_path: Path
) -> None:
    registry.add("champion", "challenger")
    version = registry.add("challenger")
    record = deploy_step(registered(tmp_path, version), settings=settings)
    assert (record["alias"], record["version"], record["status"]) == ("challenger", 2, "recorded")


def test_a_configured_server_that_is_down_does_not_fail_the_run(
    settings: Settings, registry: AliasRegistry, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    version = registry.add("champion", "challenger")
    record = deploy_step(
        registered(tmp_path, version), settings=with_server(settings, f"http://127.0.0.1:{port}")
    )
    assert record["status"] == "recorded"
    assert record["server"] == {"url": f"http://127.0.0.1:{port}", "reachable": False}


def test_waits_until_the_server_serves_the_new_challenger(
    settings: Settings,
    registry: AliasRegistry,
    tmp_path: Path,
    metrics_server: list[MetricsServer],
) -> None:
    registry.add("champion", "challenger")
    version = registry.add("challenger")

    def hot_reload(scrape: int, gauge: Gauge) -> None:
        serving(1, 2 if scrape >= 3 else 0)(scrape, gauge)  # picked up on the third look

    server = MetricsServer(hot_reload)
    metrics_server.append(server)
    record = deploy_step(
        registered(tmp_path, version),
        settings=with_server(settings, server.url),
        timeout_s=120,
        poll_s=0.05,
    )
    assert record["status"] == "served"
    assert record["server"]["serves"] == {"champion": 1, "challenger": 2}
    assert server.scrapes == 3


def test_a_server_that_never_serves_the_version_fails_saying_what_it_serves(
    settings: Settings,
    registry: AliasRegistry,
    tmp_path: Path,
    metrics_server: list[MetricsServer],
) -> None:
    registry.add("champion", "challenger")
    version = registry.add("challenger")
    server = MetricsServer(serving(1))
    metrics_server.append(server)
    with pytest.raises(DeployError) as raised:
        deploy_step(
            registered(tmp_path, version),
            settings=with_server(settings, server.url),
            timeout_s=0.5,
            poll_s=0.05,
        )
    message = str(raised.value)
    assert f"did not serve {MODEL} version 2 as challenger within 0.5s" in message
    assert "it serves challenger none, champion 1" in message
    assert "--no-canary" in message and "serve-<port>.log" in message


def test_a_record_without_a_version_is_refused_naming_the_file_and_field(
    settings: Settings, tmp_path: Path
) -> None:
    path = registered(tmp_path, "3")
    with pytest.raises(ValueError, match=r"registered\.json.*'version', got '3'"):
        deploy_step(path, settings=settings)


def test_the_metric_the_step_reads_is_the_one_the_server_exposes() -> None:
    from prometheus_client import REGISTRY

    from kaizen.serving.metrics import SERVED_VERSION

    SERVED_VERSION.labels(MODEL, "champion").set(1)
    exposed = generate_latest(REGISTRY).decode()
    assert f'{SERVED_VERSION_METRIC}{{model_name="{MODEL}",variant="champion"}} 1.0' in exposed
