"""The notify_run component tells people how a run ended on every configured channel.

The component runs as in its container: settings from ``KAIZEN_*`` variables, the gate rounds
read from the object store, the run closed in MLflow. A real HTTP server on 127.0.0.1 stands
for the generic webhook and for Slack, a real SMTP server (aiosmtpd) for email.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import certifi
import pytest
from kfp import dsl
from kfp.dsl import Artifact

from components.notify_run import notify_run
from kaizen.evaluation.outcomes import record_gate_outcome
from kaizen.platform.settings import Settings
from kaizen.platform.storage import open_store
from tests.support.smtp import SmtpServer
from tests.support.webhook import Webhook

RUN_ID = "20261203-101500-c0ffee"
SLACK_TOKEN = "T111/B222/not-a-real-token-zz9"
PASSWORD = "integration-smtp-pw-42"


@pytest.fixture
def channels(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A generic webhook, a Slack one and a STARTTLS SMTP server with login, all listening."""
    with (
        Webhook() as generic,
        Webhook() as slack,
        SmtpServer(tmp_path, security="starttls", credentials=("kaizen", PASSWORD)) as smtp,
    ):
        yield {"generic": generic, "slack": slack, "smtp": smtp}


def _environment(
    patch: pytest.MonkeyPatch, home: Path, slack_url: str, smtp_port: int, ca_file: Path
) -> None:
    password_file = home.parent / "smtp-password"
    password_file.write_text(PASSWORD)
    patch.delenv("KAIZEN_WEBHOOK_URL", raising=False)
    for name, value in {
        "HOME": str(home),
        "SLACK_WEBHOOK_URL": slack_url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_SECURITY": "starttls",
        "SMTP_USER": "kaizen",
        "SMTP_PASSWORD_FILE": str(password_file),
        "SMTP_FROM": "kaizen@example.com",
        "SMTP_TO": "oncall@example.com",
        "SMTP_CA_FILE": str(ca_file),
    }.items():
        patch.setenv(f"KAIZEN_{name}", value)


def _status(state: str, error: str | None = None) -> dsl.PipelineTaskFinalStatus:
    return dsl.PipelineTaskFinalStatus(
        state=state,
        pipeline_job_resource_name="kaizen-training",
        pipeline_task_name="exit-handler",
        error_code=9 if error else None,
        error_message=error,
    )


def _round(home: Path, index: int, roc_auc: float, passed: bool) -> None:
    outcome = "pass" if passed else "fail"
    record_gate_outcome(
        open_store(Settings(home=home)),
        RUN_ID,
        index,
        {"passed": passed, "reasons": [f"roc_auc {roc_auc:.3f} >= 0.900: {outcome}"]},
        {"roc_auc": roc_auc, "recall": 0.5, "precision": 0.25},
    )


@pytest.mark.parametrize(
    ("passed", "headline"),
    [((False, False), "Gate failed"), ((False, True), "Model registered")],
)
def test_a_run_that_reached_the_gate_is_announced_on_every_channel(
    passed: tuple[bool, bool],
    headline: str,
    channels: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "home"
    _round(home, 0, 0.71, passed[0])
    _round(home, 1, 0.84, passed[1])
    smtp: SmtpServer = channels["smtp"]
    _environment(monkeypatch, home, channels["slack"].url, smtp.port, smtp.ca_file)
    notification = Artifact(name="notification", uri=str(tmp_path / "notification"))

    notify_run.python_func(
        status=_status("SUCCEEDED"),
        webhook_url=channels["generic"].url,
        run_id=RUN_ID,
        notification=notification,
    )

    record = json.loads(Path(notification.path).read_text())
    assert [(item["channel"], item["delivered"]) for item in record["channels"]] == [
        ("webhook", True),
        ("slack", True),
        ("email", True),
    ]
    event = "gate_failed" if headline == "Gate failed" else "model_registered"
    assert channels["generic"].received[0]["event"] == event
    slack = channels["slack"].received[0]
    assert slack["text"].startswith(f"{headline}: kaizen-training {RUN_ID}")
    fields = "\n".join(field["text"] for field in slack["blocks"][2]["fields"])
    assert "roc_auc 0.840" in fields  # the best round's (gate failed) or the passing round's
    (email,) = smtp.messages
    assert email["Subject"] == f"[kaizen] {headline}: kaizen-training {RUN_ID}"
    assert "roc_auc 0.840" in email.get_content()
    assert smtp.logins == ["kaizen"]


def test_unreachable_channels_never_fail_the_exit_handler_nor_show_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = int(probe.getsockname()[1])
    home = tmp_path / "home"
    _environment(
        monkeypatch,
        home,
        f"http://127.0.0.1:{closed}/services/{SLACK_TOKEN}",
        closed,
        Path(certifi.where()),
    )
    notification = Artifact(name="notification", uri=str(tmp_path / "notification"))

    with caplog.at_level(logging.DEBUG):
        notify_run.python_func(
            status=_status("FAILED", "train-model: out of memory"),
            webhook_url="",
            run_id="",
            notification=notification,
        )

    record = json.loads(Path(notification.path).read_text())
    assert record["notification"]["event"] == "run_failed"
    assert record["notification"]["message"] == "run failed: train-model: out of memory"
    failed = {item["channel"]: item["error"] for item in record["channels"][1:]}
    assert failed["slack"].startswith("slack unreachable")
    assert failed["email"].startswith(f"email: cannot reach smtp://127.0.0.1:{closed}")
    assert notification.metadata == {"state": "FAILED"}
    shown = caplog.text + json.dumps(record)
    assert SLACK_TOKEN not in shown and PASSWORD not in shown
