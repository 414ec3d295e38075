"""``kaizen upload/submit/schedule``: what they refuse before talking to any KFP.

The commands against a KFP API are covered in tests/contract/test_kfp_api_contract.py.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner, Result

from kaizen.cli import app

runner = CliRunner()


def kaizen(*args: str) -> Result:
    return runner.invoke(app, list(args))


def flat(result: Result) -> str:
    return " ".join(result.output.split())


def test_a_kfp_host_with_credentials_is_refused_without_printing_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAIZEN_KFP_HOST", "https://admin:hunter2@kubeflow.example.com/pipeline")
    result = kaizen("submit")
    assert result.exit_code == 2
    assert "KAIZEN_KFP_HOST" in flat(result) and "KAIZEN_KFP_TOKEN_FILE" in flat(result)
    assert "hunter2" not in result.output
    assert "https://***@kubeflow.example.com/pipeline" in flat(result)


def test_a_bad_kfp_host_option_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAIZEN_KFP_HOST", raising=False)
    result = kaizen("schedule", "list", "--kfp-host", "ml-pipeline:8888")
    assert result.exit_code == 2
    assert "KFP host must be an http(s) URL" in flat(result)


def test_a_bad_namespace_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAIZEN_KFP_NAMESPACE", "Team_Fraud")
    result = kaizen("schedule", "list")
    assert result.exit_code == 2
    assert "KAIZEN_KFP_NAMESPACE" in flat(result) and "'Team_Fraud'" in flat(result)


def test_a_crontab_line_is_refused_before_anything_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAIZEN_KFP_HOST", raising=False)
    result = kaizen("schedule", "create", "--cron", "30 2 * * *")
    assert result.exit_code == 2
    assert "write '0 30 2 * * *'" in flat(result)


def test_schedule_lists_its_commands() -> None:
    result = kaizen("schedule", "--help")
    assert result.exit_code == 0
    for command in ("create", "list", "enable", "disable", "delete"):
        assert command in result.output


def test_upload_to_a_bad_host_stores_nothing(kaizen_home, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("KAIZEN_KFP_HOST", raising=False)
    result = kaizen("upload", "--commit", "0123456789abcdef", "--kfp-host", "kubeflow:80")
    assert result.exit_code == 2
    assert not (kaizen_home / "objects" / "pipelines").exists()
