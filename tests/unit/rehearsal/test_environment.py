"""The containers' environment: every variable the settings read, credentials never shown."""

from __future__ import annotations

import io

import pytest
from pydantic import SecretStr
from rich.console import Console

from kaizen.rehearsal.environment import (
    container_environment,
    describe_environment,
    redact,
    secret_values,
)
from kaizen.rehearsal.run import Options, Rehearsal

ACCESS = "AKIAREHEARSAL0001"
SECRET = "s3-secret-7f1e0c9a"
PASSWORD = "redis-pass-4b2d"


@pytest.fixture
def environment() -> dict[str, str]:
    return container_environment(
        s3_endpoint="127.0.0.1:9100",
        s3_access_key=SecretStr(ACCESS),
        s3_secret_key=SecretStr(SECRET),
        mlflow_tracking_uri="http://127.0.0.1:9200",
        redis_address="127.0.0.1:9300",
        redis_password=SecretStr(PASSWORD),
    )


def test_the_containers_get_the_cluster_settings(environment: dict[str, str]) -> None:
    assert environment == {
        "KAIZEN_ENVIRONMENT": "production",
        "KAIZEN_HOME": "/var/lib/kaizen",
        "KAIZEN_STORAGE_BACKEND": "s3",
        "KAIZEN_S3_ENDPOINT": "127.0.0.1:9100",
        "KAIZEN_S3_SECURE": "false",
        "KAIZEN_S3_BUCKET": "kaizen",
        "KAIZEN_S3_REGION": "us-east-1",
        "KAIZEN_S3_ACCESS_KEY": ACCESS,
        "KAIZEN_S3_SECRET_KEY": SECRET,
        "KAIZEN_MLFLOW_TRACKING_URI": "http://127.0.0.1:9200",
        "KAIZEN_FEAST_CONFIG": "/app/feature_repo/envs/volume/feature_store.yaml",
        "KAIZEN_FEAST_REGISTRY_URI": "s3://kaizen/feast/registry.db",
        "KAIZEN_FEAST_DATA_URI": "/var/lib/kaizen-shared/feast/data/current",
        "KAIZEN_REDIS_CONNECTION": f"127.0.0.1:9300,password={PASSWORD}",
        "FEAST_S3_ENDPOINT_URL": "http://127.0.0.1:9100",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9100",
        "AWS_ACCESS_KEY_ID": ACCESS,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_S3_ENDPOINT_URL": "http://127.0.0.1:9100",
    }


def test_the_settings_accept_it(
    environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kaizen.platform.settings import load_settings

    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.storage_backend == "s3" and settings.s3_secure is False
    assert settings.s3_secret_key.get_secret_value() == SECRET


def test_the_description_shows_every_variable_and_no_credential(
    environment: dict[str, str],
) -> None:
    text = "\n".join(describe_environment(environment))
    for secret in (ACCESS, SECRET, PASSWORD):
        assert secret not in text
    assert {line.split("=", 1)[0] for line in text.splitlines()} == set(environment)
    assert "KAIZEN_REDIS_CONNECTION=127.0.0.1:9300,password=***" in text
    assert "KAIZEN_S3_SECRET_KEY=***" in text and "AWS_ACCESS_KEY_ID=***" in text


def test_the_credentials_are_found_and_redacted(environment: dict[str, str]) -> None:
    assert secret_values(environment) == {ACCESS, SECRET, PASSWORD}
    line = f"connecting with {ACCESS}/{SECRET} and password={PASSWORD}"
    assert redact(line, secret_values(environment)) == "connecting with ***/*** and password=***"


def test_what_the_rehearsal_prints_and_a_log_holding_a_credential_are_caught(
    environment: dict[str, str], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    rehearsal = Rehearsal(Options(workdir=tmp_path), Console(file=out, width=200))
    rehearsal.secrets = secret_values(environment)
    rehearsal.say(f"error: {environment['KAIZEN_REDIS_CONNECTION']} refused {SECRET}")
    assert PASSWORD not in out.getvalue() and SECRET not in out.getvalue()
    assert "127.0.0.1:9300,password=*** refused ***" in out.getvalue()

    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "clean.log").write_text("nothing to see")
    rehearsal._check_no_secret_in_logs()
    assert rehearsal.failures == []
    (tmp_path / "logs" / "leaky.log").write_text(f"AWS_SECRET_ACCESS_KEY={SECRET}")
    rehearsal._check_no_secret_in_logs()
    assert [failure.step for failure in rehearsal.failures] == ["secrets"]
    assert "leaky.log" in rehearsal.failures[0].error
    assert SECRET not in rehearsal.failures[0].error
