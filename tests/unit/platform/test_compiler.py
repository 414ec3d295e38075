"""The compiled pipeline is the artifact that goes to the cluster: keep it visible in review."""

from pathlib import Path

import pytest
import yaml

from kaizen.compiler import TRAINING_PIPELINE_YAML, CompileError, compile_pipeline

DIGEST = "sha256:" + "0123456789abcdef" * 4


def test_committed_yaml_matches_the_pipeline_code(tmp_path: Path) -> None:
    fresh = compile_pipeline(tmp_path / "pipeline.yaml")
    assert fresh.read_text() == TRAINING_PIPELINE_YAML.read_text(), (
        "pipelines/training_pipeline.yaml is stale: run `kaizen compile` (or `make compile`) "
        "and commit the result"
    )


def _executors(path: Path) -> dict[str, dict]:
    spec = yaml.safe_load(path.read_text())
    return spec["deploymentSpec"]["executors"]


def test_components_install_nothing_at_run_time() -> None:
    text = TRAINING_PIPELINE_YAML.read_text()
    assert "pip install" not in text
    for executor in _executors(TRAINING_PIPELINE_YAML).values():
        assert executor["container"]["image"].startswith("ghcr.io/kaizen-mlops/kaizen-component")


def test_image_digest_pins_every_executor(tmp_path: Path) -> None:
    pinned = compile_pipeline(tmp_path / "pinned.yaml", image_digest=DIGEST)
    images = {executor["container"]["image"] for executor in _executors(pinned).values()}
    assert images == {f"ghcr.io/kaizen-mlops/kaizen-component@{DIGEST}"}


@pytest.mark.parametrize("digest", ["latest", "sha256:abc", "md5:" + "0" * 64])
def test_bad_digest_is_refused_and_nothing_is_written(tmp_path: Path, digest: str) -> None:
    target = tmp_path / "pipeline.yaml"
    with pytest.raises(CompileError, match="sha256:<64 hex characters>"):
        compile_pipeline(target, image_digest=digest)
    assert not target.exists()


def test_gate_guards_publish_and_notify_always_runs() -> None:
    spec = yaml.safe_load(TRAINING_PIPELINE_YAML.read_text())
    root_tasks = spec["root"]["dag"]["tasks"]
    assert root_tasks["notify-run"]["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    inner = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    condition = inner["condition-2"]["triggerPolicy"]["condition"]
    assert condition == "inputs.parameter_values['pipelinechannel--gate-model-Output'] == 'pass'"
    publish = spec["components"]["comp-condition-2"]["dag"]["tasks"]["publish-model"]
    assert publish["cachingOptions"].get("enableCache") is not True  # side-effecting: never cached
