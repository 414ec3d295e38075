"""A tracking URI with credentials in it is never shown: not on stdout, stderr or in the logs.

The tracking server is "down" (a closed port on 127.0.0.1): the path on which MLflow's own
error quotes the URI it called, password included. ``MLFLOW_HTTP_REQUEST_MAX_RETRIES=0``
makes MLflow give up at once instead of retrying for minutes, as an operator would set it.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kaizen.cli import app
from kaizen.cli._app import fail

PASSWORD = "s3cret-Pa55"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def unreachable_server(monkeypatch: pytest.MonkeyPatch) -> str:
    """``host:port`` of a tracking server that is down, set with credentials in the URI."""
    address = f"127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("KAIZEN_MLFLOW_TRACKING_URI", f"http://alice:{PASSWORD}@{address}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return address


def _files_holding(folder: Path, text: str) -> list[Path]:
    return [
        path
        for path in folder.rglob("*")
        if path.is_file() and text in path.read_text(errors="replace")
    ]


def test_status_against_a_server_that_is_down_names_it_without_the_password(
    unreachable_server: str, kaizen_home: Path
) -> None:
    # A real `kaizen` process: what a user sees, tracebacks and library logging included.
    result = subprocess.run(
        [sys.executable, "-m", "kaizen.cli", "status"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "KAIZEN_LOG_LEVEL": "DEBUG"},
        check=False,
    )

    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert f"http://***@{unreachable_server}/api/2.0/mlflow/" in result.stderr
    assert "Connection refused" in result.stderr
    assert "Traceback" not in result.stderr
    for shown in (result.stdout, result.stderr):
        assert PASSWORD not in shown and "alice" not in shown
    assert _files_holding(kaizen_home, PASSWORD) == []


def test_serve_with_the_registry_down_names_it_without_the_password(
    unreachable_server: str, kaizen_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    result = CliRunner().invoke(app, ["serve", "--no-feast", "--http-port", str(_closed_port())])

    assert result.exit_code == 1, result.output
    assert f"cannot read the registry at http://***@{unreachable_server}:" in result.stderr
    assert PASSWORD not in result.stdout and PASSWORD not in result.stderr
    assert PASSWORD not in caplog.text
    assert _files_holding(kaizen_home, PASSWORD) == []


def test_promote_with_the_registry_down_fails_cleanly_without_the_password(
    unreachable_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    result = CliRunner().invoke(app, ["promote", "3"])

    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), "an error line, not a traceback"
    assert f"http://***@{unreachable_server}" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr + caplog.text


def test_every_error_line_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Exception) as ended:
        fail(f"upload to https://bob:{PASSWORD}@minio.example:9000/kaizen?X-Amz-Signature=f00d")
    assert getattr(ended.value, "exit_code", None) == 1
    shown = capsys.readouterr().err
    assert "https://***@minio.example:9000/kaizen?X-Amz-Signature=***" in shown
    assert PASSWORD not in shown and "f00d" not in shown


def test_predict_against_a_server_url_with_credentials_never_shows_them() -> None:
    address = f"127.0.0.1:{_closed_port()}"
    request = ["predict", "--customer-id", "c1", "--merchant-id", "m1", "--amount", "10"]

    unreachable = CliRunner().invoke(app, [*request, "--url", f"http://bob:{PASSWORD}@{address}"])
    not_http = CliRunner().invoke(app, [*request, "--url", f"ftp://bob:{PASSWORD}@{address}"])

    assert unreachable.exit_code == 1
    assert f"http://***@{address}" in unreachable.stderr
    assert not_http.exit_code == 2
    assert f"ftp://***@{address}" in not_http.stderr
    for result in (unreachable, not_http):
        assert PASSWORD not in result.stdout + result.stderr
