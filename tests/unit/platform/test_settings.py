from pathlib import Path

import pytest

from kaizen.platform.settings import SettingsError, load_settings


def test_defaults_resolve_home_to_an_absolute_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAIZEN_HOME")
    settings = load_settings()
    assert settings.home == (Path.cwd() / ".kaizen")
    assert settings.environment == "development"
    assert settings.webhook_url is None


def test_home_from_environment(kaizen_home: Path) -> None:
    assert load_settings().home == kaizen_home
    assert load_settings().object_store_dir == kaizen_home / "objects"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("KAIZEN_ENVIRONMENT", "staging", "'development' or 'production'"),
        ("KAIZEN_WEBHOOK_URL", "not a url", "URL"),
        ("KAIZEN_STORAGE_BACKEND", "ftp", "'local'"),
        ("KAIZEN_LOG_LEVEL", "LOUD", "'DEBUG'"),
    ],
)
def test_invalid_value_names_the_variable_and_what_was_expected(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert variable in message
    assert expected in message
    assert repr(value) in message


def test_empty_webhook_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAIZEN_WEBHOOK_URL", "")
    assert load_settings().webhook_url is None


def test_production_refuses_placeholder_object_store_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAIZEN_ENVIRONMENT", "production")
    monkeypatch.setenv("KAIZEN_STORAGE_BACKEND", "s3")
    with pytest.raises(SettingsError, match="KAIZEN_S3_ACCESS_KEY must be set in production"):
        load_settings()
    monkeypatch.setenv("KAIZEN_S3_ACCESS_KEY", "real-key")
    monkeypatch.setenv("KAIZEN_S3_SECRET_KEY", "real-secret")
    settings = load_settings()
    assert settings.s3_secret_key.get_secret_value() == "real-secret"
    assert "real-secret" not in repr(settings)  # never printed by accident


def test_tracking_uri_defaults_to_sqlite_under_home(kaizen_home: Path) -> None:
    assert load_settings().tracking_uri == f"sqlite:///{kaizen_home / 'mlflow.db'}"


def test_credentials_come_from_mounted_secret_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "accesskey").write_text("from-the-secret\n")
    (tmp_path / "secretkey").write_text("s3cr3t")
    monkeypatch.setenv("KAIZEN_S3_ACCESS_KEY", "from-the-variable")
    monkeypatch.setenv("KAIZEN_S3_ACCESS_KEY_FILE", str(tmp_path / "accesskey"))
    monkeypatch.setenv("KAIZEN_S3_SECRET_KEY_FILE", str(tmp_path / "secretkey"))
    settings = load_settings()
    assert settings.s3_access_key.get_secret_value() == "from-the-secret"  # the file wins
    assert settings.s3_secret_key.get_secret_value() == "s3cr3t"


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "No such file or directory"), ("\n", "is empty")],
)
def test_an_unreadable_or_empty_secret_file_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "secretkey"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv("KAIZEN_S3_SECRET_KEY_FILE", str(path))
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert "KAIZEN_S3_SECRET_KEY_FILE: " in str(refused.value)
    assert message in str(refused.value) and str(path) in str(refused.value)
