"""Credentials never shown: one redaction for URIs, connection strings and messages."""

from __future__ import annotations

import pytest

from kaizen.platform.notify import redact_url
from kaizen.platform.redaction import redact_text, redact_uri
from kaizen.platform.storage import S3ObjectStore


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        # user:password, and a lone user name (often a token itself)
        ("http://alice:s3cret@127.0.0.1:5000", "http://***@127.0.0.1:5000"),
        ("https://ghp_0123456789@mlflow.example.com/", "https://***@mlflow.example.com/"),
        # query values and fragments: keys stay, values go
        (
            "https://mlflow.example.com/api?token=abc123&workspace=ml#access_token=xyz",
            "https://mlflow.example.com/api?token=***&workspace=***#***",
        ),
        # a password holding '/' unencoded still ends at the last '@'
        ("http://alice:pa/ss@mlflow:5000/x", "http://***@mlflow:5000/x"),
        # database URIs (an MLflow backend store), with the driver in the scheme
        (
            "postgresql+psycopg2://mlflow:hunter22@db.kaizen:5432/mlflow?sslmode=require",
            "postgresql+psycopg2://***@db.kaizen:5432/mlflow?sslmode=***",
        ),
        # scheme-less: an S3 endpoint typed with credentials, a Redis connection string
        ("alice:s3cret@minio.kaizen:9000", "***@minio.kaizen:9000"),
        ("redis.kaizen:6379,password=hunter22,ssl=true", "redis.kaizen:6379,password=***,ssl=true"),
        # nothing secret: unchanged
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("sqlite:////var/lib/kaizen/mlflow.db", "sqlite:////var/lib/kaizen/mlflow.db"),
        (
            "s3://kaizen/pipelines/kaizen-training/1/pipeline.yaml",
            "s3://kaizen/pipelines/kaizen-training/1/pipeline.yaml",
        ),
        ("minio.kaizen:9000", "minio.kaizen:9000"),
        ("http://[::1]:5000/api", "http://[::1]:5000/api"),
    ],
)
def test_a_uri_keeps_where_it_points_and_loses_its_credentials(uri: str, shown: str) -> None:
    assert redact_uri(uri) == shown


def test_a_webhook_url_shows_only_scheme_host_and_port() -> None:
    # Slack-style webhooks carry the secret in the path.
    assert (
        redact_uri("https://user:pw@hooks.example.com/services/T0/B0/xyz?x=1", keep_path=False)
        == "https://hooks.example.com/…"
    )
    assert redact_uri("http://127.0.0.1:9999", keep_path=False) == "http://127.0.0.1:9999/"
    assert (
        redact_url("https://hooks.example.com/services/T0/B0/xyz") == "https://hooks.example.com/…"
    )


def test_a_library_message_quoting_the_tracking_uri_is_masked() -> None:
    # MLflow's own words when the tracking server is down.
    message = (
        "API request to http://alice:s3cret@127.0.0.1:35925/api/2.0/mlflow/experiments/search "
        "failed with exception HTTPConnectionPool(host='127.0.0.1', port=35925): Max retries "
        "exceeded with url: /api/2.0/mlflow/experiments/search (Caused by NewConnectionError("
        "'Failed to establish a new connection: [Errno 111] Connection refused'))"
    )

    shown = redact_text(message)

    assert "s3cret" not in shown and "alice" not in shown
    assert "http://***@127.0.0.1:35925/api/2.0/mlflow/experiments/search failed" in shown
    assert "Connection refused" in shown


def test_known_secrets_fields_and_authorization_values_are_masked() -> None:
    text = (
        "connecting with AKIAEXAMPLE/AKIAEXAMPLEwJalrXUtnFEMI and password=hunter22, endpoint "
        "alice:s3cret@minio:9000, header Authorization: Bearer eyJhbGciOi.payload.sig, "
        "env AWS_SECRET_ACCESS_KEY=wJalr0123"
    )

    shown = redact_text(text, ["AKIAEXAMPLE", "AKIAEXAMPLEwJalrXUtnFEMI"])

    # The longer secret goes first, so the shorter one inside it leaves no tail.
    assert shown == (
        "connecting with ***/*** and password=***, endpoint ***@minio:9000, header "
        "Authorization: Bearer ***, env AWS_SECRET_ACCESS_KEY=***"
    )


def test_ordinary_messages_are_left_alone() -> None:
    text = (
        "KAIZEN_S3_SECRET_KEY must be set in production; error: retry at 12:30 for bob@example; "
        "max_tokens 5; a basic validation of Bearer tokens; see "
        "http://127.0.0.1:8080/v2/health/ready"
    )
    assert redact_text(text, ["a", "ab"]) == text  # secrets shorter than 4 would mask words


def test_an_s3_endpoint_with_credentials_is_refused_without_showing_them() -> None:
    with pytest.raises(ValueError) as caught:
        S3ObjectStore("alice:s3cret@minio.kaizen:9000", "kaizen", "AKIAEXAMPLE", "secretkey1")
    message = str(caught.value)
    assert "s3cret" not in message
    assert "'***@minio.kaizen:9000'" in message
    assert "credentials" in message


def test_an_invalid_setting_is_named_without_its_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kaizen.platform.settings import SettingsError, load_settings

    monkeypatch.setenv("KAIZEN_WEBHOOK_URL", "ftp://alice:pw-123456@hooks.example/x?token=t0k3n")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "KAIZEN_WEBHOOK_URL" in message and "ftp://***@hooks.example/x?token=***" in message
    assert "pw-123456" not in message and "t0k3n" not in message
