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


def test_compile_pins_the_image_repository_by_digest(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "p.yaml"
    digest = "sha256:" + "ab" * 32
    result = runner.invoke(
        app,
        [
            "compile",
            "--output",
            str(target),
            "--image-digest",
            digest,
            "--image-repository",
            "127.0.0.1:5000/kaizen-component",
        ],
    )
    assert result.exit_code == 0, result.output
    images = {line.strip() for line in target.read_text().splitlines() if "image:" in line}
    assert images == {f"image: 127.0.0.1:5000/kaizen-component@{digest}"}


def test_bad_param_syntax_is_named() -> None:
    result = runner.invoke(app, ["run", "-p", "epochs"])
    assert result.exit_code == 2
    assert "NAME=VALUE" in result.output


def test_upload_twice_is_a_no_op_that_says_so(kaizen_home) -> None:  # type: ignore[no-untyped-def]
    first = runner.invoke(app, ["upload", "--commit", "0123456789abcdef0123"])
    assert first.exit_code == 0, first.output
    assert "uploaded pipeline 'kaizen-training' version" in first.output
    stored = list(
        (kaizen_home / "objects" / "pipelines" / "kaizen-training").glob("*/pipeline.yaml")
    )
    assert len(stored) == 1 and stored[0].parent.name.endswith("-g0123456789ab")
    second = runner.invoke(app, ["upload", "--commit", "0123456789abcdef0123"])
    assert second.exit_code == 0
    assert "nothing uploaded" in second.output.replace("\n", " ")
    assert len(list(stored[0].parent.parent.glob("*/pipeline.yaml"))) == 1


def test_upload_refuses_a_file_that_is_not_a_pipeline(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bogus = tmp_path / "pipeline.yaml"
    bogus.write_text("just: a mapping\n")
    result = runner.invoke(app, ["upload", "--pipeline", str(bogus)])
    assert result.exit_code == 2
    assert "pipeline.yaml" in result.output
