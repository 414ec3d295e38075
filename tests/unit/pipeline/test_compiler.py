"""The compiled pipeline is the artifact that goes to the cluster: keep it visible in review."""

import re
from pathlib import Path

import pytest
import yaml

from kaizen.pipeline.compiler import TRAINING_PIPELINE_YAML, CompileError, compile_pipeline

DIGEST = "sha256:" + "0123456789abcdef" * 4


def _without_sdk_version(text: str) -> str:
    # A kfp patch release (the pin allows 2.17.x) stamps its version here and nothing else;
    # the comparison is about what the cluster runs, not which patch compiled it.
    return re.sub(r"(?m)^sdkVersion: kfp-.*$", "sdkVersion: kfp", text)


def test_committed_yaml_matches_the_pipeline_code(tmp_path: Path) -> None:
    fresh = compile_pipeline(tmp_path / "pipeline.yaml")
    assert _without_sdk_version(fresh.read_text()) == _without_sdk_version(
        TRAINING_PIPELINE_YAML.read_text()
    ), (
        "pipelines/training_pipeline.yaml is stale: run `kaizen compile` (or `make compile`) "
        "and commit the result"
    )


def _documents(path: Path) -> list[dict]:
    """The pipeline spec, then the Kubernetes platform spec (volumes)."""
    return list(yaml.safe_load_all(path.read_text()))


def _executors(path: Path) -> dict[str, dict]:
    return _documents(path)[0]["deploymentSpec"]["executors"]


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


def test_image_repository_replaces_the_registry_and_path(tmp_path: Path) -> None:
    pinned = compile_pipeline(
        tmp_path / "pinned.yaml",
        image_digest=DIGEST,
        image_repository="127.0.0.1:5000/kaizen-component",
    )
    images = {executor["container"]["image"] for executor in _executors(pinned).values()}
    assert images == {f"127.0.0.1:5000/kaizen-component@{DIGEST}"}


@pytest.mark.parametrize(
    ("repository", "digest", "message"),
    [
        ("127.0.0.1:5000/kaizen-component:dev", DIGEST, "without a tag or digest"),
        (f"127.0.0.1:5000/kaizen-component@{DIGEST}", DIGEST, "without a tag or digest"),
        ("127.0.0.1:5000/Kaizen", DIGEST, "without a tag or digest"),
        ("127.0.0.1:5000/kaizen-component", None, "give image_digest too"),
    ],
)
def test_bad_image_repository_is_refused_and_nothing_is_written(
    tmp_path: Path, repository: str, digest: str | None, message: str
) -> None:
    target = tmp_path / "pipeline.yaml"
    with pytest.raises(CompileError, match=message):
        compile_pipeline(target, image_digest=digest, image_repository=repository)
    assert not target.exists()


def test_gate_guards_register_and_retune_and_notify_always_runs() -> None:
    spec = _documents(TRAINING_PIPELINE_YAML)[0]
    root_tasks = spec["root"]["dag"]["tasks"]
    assert root_tasks["notify-run"]["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    components = spec["components"]
    first_round = components["comp-exit-handler-1"]["dag"]["tasks"]
    conditions = {
        name: task["triggerPolicy"]["condition"]
        for name, task in first_round.items()
        if "condition" in task.get("triggerPolicy", {})
    }
    gate = "inputs.parameter_values['pipelinechannel--gate-model-Output']"
    assert sorted(conditions.values()) == [f"{gate} == 'fail'", f"{gate} == 'pass'"]
    passed = next(name for name, cond in conditions.items() if cond.endswith("'pass'"))
    register = components[f"comp-{passed}"]["dag"]["tasks"]["register-model"]
    assert register["cachingOptions"].get("enableCache") is not True  # side effect: never cached
    # Each re-tune round is guarded by the retune_rounds parameter, up to the unrolled maximum.
    text = TRAINING_PIPELINE_YAML.read_text()
    assert text.count("int(inputs.parameter_values['pipelinechannel--retune_rounds'])") == 2
    assert "comp-tune-model-3" in components and "comp-tune-model-4" not in components


def test_tuning_steps_mount_the_volume_the_katib_trials_read(repo_root: Path) -> None:
    platform = _documents(TRAINING_PIPELINE_YAML)[1]["platforms"]["kubernetes"]
    tune_executors = [name for name in _executors(TRAINING_PIPELINE_YAML) if "tune-model" in name]
    mounts = {name: platform["deploymentSpec"]["executors"][name] for name in tune_executors}
    assert len(mounts) == 3  # one per round
    for experiment in ("fraud-mlp-tpe.yaml", "fraud-mlp-tpe-wide.yaml"):
        trial = yaml.safe_load((repo_root / "katib" / experiment).read_text())
        job = trial["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in job["volumes"]
            if "persistentVolumeClaim" in v
        ]
        mount_paths = {m["mountPath"] for m in job["containers"][0]["volumeMounts"]}
        for mount in mounts.values():
            assert mount["pvcMount"][0]["constant"] in claims
            assert mount["pvcMount"][0]["mountPath"] in mount_paths
