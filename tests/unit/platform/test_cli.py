import pytest
from typer.testing import CliRunner

from kaizen.cli import app

runner = CliRunner()


def test_invalid_setting_stops_run_with_exit_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAIZEN_ENVIRONMENT", "prod")
    result = runner.invoke(app, ["run"])
    assert result.exit_code == 2
    assert "KAIZEN_ENVIRONMENT" in result.output and "'prod'" in result.output


def test_compile_refuses_a_bad_digest(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "p.yaml"
    result = runner.invoke(app, ["compile", "--output", str(target), "--image-digest", "latest"])
    assert result.exit_code == 2
    assert "sha256:<64 hex characters>" in result.output
    assert not target.exists()


def test_bad_param_syntax_is_named() -> None:
    result = runner.invoke(app, ["run", "-p", "epochs"])
    assert result.exit_code == 2
    assert "NAME=VALUE" in result.output
