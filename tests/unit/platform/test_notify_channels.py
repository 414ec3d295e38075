"""Slack-compatible webhook messages and SMTP email, against real servers on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import AnyHttpUrl, SecretStr

from kaizen.platform.notify import DeliveryRecord, Event, Notification, deliver
from kaizen.platform.settings import Settings, SettingsError, load_settings
from tests.support.smtp import SmtpServer
from tests.support.webhook import Webhook

SLACK_TOKEN = "T000/B000/xoxb-not-a-real-slack-token"
PASSWORD = "s3cret-smtp-passw0rd"
Security = Literal["starttls", "ssl", "none"]
GATE_FAILED = Notification(
    pipeline="kaizen-training",
    run="20261203-092728-a59a7c",
    state="SUCCEEDED",
    message="gate failed after 2 round(s), model not registered; best reached in round 1",
    details={
        "gate_rounds": [{"round": 0}, {"round": 1}],
        "best_round": 1,
        "best_metrics": {"roc_auc": 0.8123, "recall": 0.5, "precision": 0.25},
        "failing_checks": "roc_auc 0.812 >= 0.950: fail",
    },
    event=Event.GATE_FAILED,
)


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _smtp_settings(home: Path, server: SmtpServer, security: Security, **extra: Any) -> Settings:
    return Settings(
        home=home,
        smtp_host="127.0.0.1",
        smtp_port=server.port,
        smtp_security=security,
        smtp_from="kaizen@example.com",
        smtp_to="oncall@example.com, ml@example.com",
        **extra,
    )


def _kaizen_log(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        record.getMessage() for record in caplog.records if record.name.startswith("kaizen")
    )


# ------------------------------------------------------------------ Slack


def test_slack_webhook_gets_text_and_blocks_with_the_best_metrics(tmp_path: Path) -> None:
    with Webhook() as hook:
        records = deliver(
            GATE_FAILED, Settings(home=tmp_path, slack_webhook_url=SecretStr(hook.url))
        )
    slack = records[-1]
    assert slack.channel == "slack" and slack.delivered and slack.attempts == 1
    assert len(hook.received) == 1
    body = hook.received[0]
    assert body["text"].startswith("Gate failed: kaizen-training 20261203-092728-a59a7c")
    header, message, fields, context = body["blocks"]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    assert "Gate failed" in header["text"]["text"]
    assert message["text"]["text"] == GATE_FAILED.message
    shown = {field["text"].split("\n", 1)[0]: field["text"] for field in fields["fields"]}
    assert "roc_auc 0.812" in shown["*best metrics*"]
    assert "recall 0.500" in shown["*best metrics*"]
    assert "roc_auc 0.812 &gt;= 0.950: fail" in shown["*failing checks*"]
    assert "*gate rounds*" not in shown  # the records themselves stay in the JSON webhook
    assert "gate_failed" in context["elements"][0]["text"]


@pytest.mark.parametrize("event", list(Event))
def test_every_event_has_a_headline_in_slack_and_email(event: Event, tmp_path: Path) -> None:
    note = Notification("canary", "fraud-detector version 3", "DONE", "what happened", event=event)
    with Webhook() as hook, SmtpServer(tmp_path) as server:
        settings = _smtp_settings(tmp_path, server, "none", slack_webhook_url=SecretStr(hook.url))
        records = deliver(note, settings)
    assert [record.delivered for record in records[1:]] == [True, True]
    assert event.headline in hook.received[0]["blocks"][0]["text"]["text"]
    assert server.messages[0]["Subject"] == (
        f"[kaizen] {event.headline}: canary fraud-detector version 3"
    )


def test_the_generic_webhook_keeps_working_beside_slack(tmp_path: Path) -> None:
    with Webhook() as generic, Webhook() as slack:
        settings = Settings(
            home=tmp_path,
            webhook_url=AnyHttpUrl(generic.url),
            slack_webhook_url=SecretStr(slack.url),
        )
        records = deliver(GATE_FAILED, settings)
    assert [(record.channel, record.delivered) for record in records] == [
        ("webhook", True),
        ("slack", True),
    ]
    assert generic.received[0]["event"] == "gate_failed"
    assert generic.received[0]["details"]["best_metrics"]["roc_auc"] == 0.8123
    assert "blocks" in slack.received[0] and "event" not in slack.received[0]


def test_unreachable_slack_is_recorded_not_raised_and_its_token_never_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/services/{SLACK_TOKEN}"
    with caplog.at_level(logging.DEBUG):
        records = deliver(
            GATE_FAILED, Settings(home=tmp_path, slack_webhook_url=SecretStr(url)), backoff_s=0.01
        )
    slack = records[-1]
    assert not slack.delivered and slack.attempts == 3
    assert slack.error is not None and slack.error.startswith("slack unreachable")
    assert slack.webhook == f"{url.split('/services')[0]}/…"
    assert SLACK_TOKEN not in str(slack.to_dict())
    assert "not delivered" in _kaizen_log(caplog)
    assert SLACK_TOKEN not in caplog.text


# ------------------------------------------------------------------ email


def test_email_arrives_with_subject_and_body(tmp_path: Path) -> None:
    with SmtpServer(tmp_path) as server:
        records = deliver(GATE_FAILED, _smtp_settings(tmp_path, server, "none"))
    email = records[-1]
    assert email.channel == "email" and email.delivered and email.webhook is None
    assert server.keeper.envelopes == [
        ("kaizen@example.com", ["oncall@example.com", "ml@example.com"])
    ]
    message = server.messages[0]
    assert message["Subject"] == "[kaizen] Gate failed: kaizen-training 20261203-092728-a59a7c"
    assert message["From"] == "kaizen@example.com"
    body = message.get_content().replace("\r\n", "\n")  # SMTP sends CRLF lines
    assert body.startswith(GATE_FAILED.message)
    assert "best metrics:\n  roc_auc 0.812\n  recall 0.500\n  precision 0.250" in body
    assert "failing checks: roc_auc 0.812 >= 0.950: fail" in body
    assert "event: gate_failed" in body


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_email_over_tls_with_login_never_logs_the_password(
    security: Security, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    password_file = tmp_path / "smtp-password"
    password_file.write_text(PASSWORD + "\n")
    with (
        SmtpServer(tmp_path, security=security, credentials=("kaizen", PASSWORD)) as server,
        caplog.at_level(logging.DEBUG),
    ):
        settings = _smtp_settings(
            tmp_path,
            server,
            security,
            smtp_user="kaizen",
            smtp_password_file=password_file,
            smtp_ca_file=server.ca_file,
        )
        records = deliver(GATE_FAILED, settings)
    assert records[-1].delivered, records[-1].error
    assert server.logins == ["kaizen"]
    assert server.messages[0]["Subject"].startswith("[kaizen] Gate failed")
    assert PASSWORD not in caplog.text and PASSWORD not in str(records[-1].to_dict())


def test_refused_login_is_recorded_once_without_the_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        SmtpServer(tmp_path, security="starttls", credentials=("kaizen", "other")) as server,
        caplog.at_level(logging.DEBUG),
    ):
        settings = _smtp_settings(
            tmp_path,
            server,
            "starttls",
            smtp_user="kaizen",
            smtp_password=SecretStr(PASSWORD),
            smtp_ca_file=server.ca_file,
        )
        email = deliver(GATE_FAILED, settings, backoff_s=0.01)[-1]
    assert not email.delivered and email.attempts == 1  # a wrong password is not retried
    assert email.error is not None and email.error.startswith("email: login refused")
    assert server.messages == []
    assert "not emailed" in _kaizen_log(caplog)
    assert PASSWORD not in caplog.text and PASSWORD not in str(email.to_dict())


def test_untrusted_certificate_is_refused_and_recorded(tmp_path: Path) -> None:
    with SmtpServer(tmp_path, security="starttls") as server:
        email = deliver(GATE_FAILED, _smtp_settings(tmp_path, server, "starttls"), backoff_s=0.01)[
            -1
        ]
    assert not email.delivered
    assert email.error is not None and "CERTIFICATE_VERIFY_FAILED" in email.error
    assert server.messages == []


def test_refused_smtp_connection_is_recorded_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        home=tmp_path,
        smtp_host="127.0.0.1",
        smtp_port=_closed_port(),
        smtp_security="none",
        smtp_from="kaizen@example.com",
        smtp_to="oncall@example.com",
        smtp_user="kaizen",
        smtp_password=SecretStr(PASSWORD),
    )
    with caplog.at_level(logging.DEBUG):
        records: list[DeliveryRecord] = deliver(GATE_FAILED, settings, backoff_s=0.01)
    email = records[-1]
    assert not email.delivered and email.attempts == 3
    assert email.error is not None and email.error.startswith(
        f"email: cannot reach smtp://127.0.0.1:{settings.smtp_port} (none)"
    )
    assert "Connection refused" in email.error
    assert PASSWORD not in caplog.text


# ------------------------------------------------------------------ settings


def _load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **variables: str) -> Settings:
    monkeypatch.setenv("KAIZEN_HOME", str(tmp_path))
    for name, value in variables.items():
        monkeypatch.setenv(f"KAIZEN_{name}", value)
    return load_settings()


def test_smtp_settings_from_the_environment_with_the_password_from_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "password").write_text(PASSWORD + "\n")
    settings = _load(
        monkeypatch,
        tmp_path,
        SMTP_HOST="smtp.example.com",
        SMTP_USER="kaizen",
        SMTP_PASSWORD_FILE=str(tmp_path / "password"),
        SMTP_FROM="kaizen@example.com",
        SMTP_TO="a@example.com,,b@example.com ",
        SMTP_PORT="",
    )
    assert settings.smtp_password.get_secret_value() == PASSWORD
    assert settings.smtp_recipients == ("a@example.com", "b@example.com")
    assert settings.smtp_port is None and settings.smtp_security == "starttls"


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"SMTP_HOST": "smtp.example.com", "SMTP_TO": "a@example.com"}, "KAIZEN_SMTP_FROM"),
        ({"SMTP_HOST": "smtp.example.com", "SMTP_FROM": "k@example.com"}, "KAIZEN_SMTP_TO"),
        (
            {"SMTP_HOST": "h", "SMTP_FROM": "k@example.com", "SMTP_TO": "nobody"},
            "KAIZEN_SMTP_TO: expected addresses, got ['nobody']",
        ),
        (
            {"SMTP_HOST": "h", "SMTP_FROM": "k@e.com", "SMTP_TO": "a@e.com", "SMTP_USER": "k"},
            "got only the user",
        ),
        (
            {
                "SMTP_HOST": "smtp.example.com",
                "SMTP_FROM": "k@example.com",
                "SMTP_TO": "a@example.com",
                "SMTP_USER": "k",
                "SMTP_PASSWORD": PASSWORD,
                "SMTP_SECURITY": "none",
            },
            "KAIZEN_SMTP_SECURITY=none would send the SMTP password in clear text",
        ),
        ({"SMTP_TO": "a@example.com"}, "KAIZEN_SMTP_HOST is not"),
        (
            {"SMTP_HOST": "h", "SMTP_FROM": "k@e.com", "SMTP_TO": "a@e.com", "SMTP_CA_FILE": "/x"},
            "KAIZEN_SMTP_CA_FILE: no such file /x",
        ),
        ({"SMTP_SECURITY": "tls"}, "KAIZEN_SMTP_SECURITY"),
        ({"SMTP_PASSWORD_FILE": "/nonexistent/smtp"}, "KAIZEN_SMTP_PASSWORD_FILE: cannot read"),
        (
            {"SLACK_WEBHOOK_URL": f"ftp://hooks.example.com/{SLACK_TOKEN}"},
            "KAIZEN_SLACK_WEBHOOK_URL: expected an http(s) URL",
        ),
    ],
)
def test_an_incomplete_channel_stops_at_start_naming_the_variable(
    variables: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(SettingsError) as error:
        _load(monkeypatch, tmp_path, **variables)
    assert expected in str(error.value)
    assert PASSWORD not in str(error.value) and SLACK_TOKEN not in str(error.value)
