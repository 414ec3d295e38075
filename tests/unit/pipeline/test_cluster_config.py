"""What the compiled pipeline asks of a cluster: configuration, volumes, retries, caching, deploy.

Read from the committed YAML (the artifact that goes to Kubeflow Pipelines), whose second
document is kfp-kubernetes' platform configuration per executor.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kaizen.pipeline.compiler import TRAINING_PIPELINE_YAML
from pipelines.training_pipeline import (
    CONFIG_MAP,
    FEATURE_DATA_MOUNT,
    FEATURE_DATA_PVC,
    REQUIRED_CONFIG,
    REQUIRED_CREDENTIALS,
    SECRET,
    TUNING_DATA_PVC,
    config_map_keys,
    secret_keys,
)

ROOT = Path(__file__).resolve().parents[3]
SPEC, PLATFORM = list(yaml.safe_load_all(TRAINING_PIPELINE_YAML.read_text()))
EXECUTORS: dict[str, Any] = SPEC["deploymentSpec"]["executors"]
KUBERNETES: dict[str, Any] = PLATFORM["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
# Retries a task declares, by task name without its round suffix; 0: not retried.
RETRIES = {
    "ingest-data": 0,
    "build-features": 2,
    "tune-model": 1,
    "train-model": 1,
    "evaluate-model": 2,
    "gate-model": 2,
    "register-model": 2,
    "deploy-model": 2,
    "notify-run": 0,
}
# Tasks that read or change live state, or have side effects: never served from the cache.
UNCACHED = {
    "build-features",
    "tune-model",
    "evaluate-model",
    "gate-model",
    "register-model",
    "deploy-model",
    "notify-run",
}


def tasks() -> dict[str, tuple[str, dict[str, Any]]]:
    """Every task in every DAG: name -> (the component holding it, its spec)."""
    found = {name: ("root", task) for name, task in SPEC["root"]["dag"]["tasks"].items()}
    for component, body in SPEC["components"].items():
        for name, task in (body.get("dag") or {}).get("tasks", {}).items():
            found[name] = (component, task)
    return found


def base_name(task: str) -> str:
    return re.sub(r"-\d+$", "", task)


def documented_variables() -> set[str]:
    """The first column of the tables docs/configuration.md gives to Kaizen's processes."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    ours = text.split("## MLflow's tracking server", 1)[0]
    found: set[str] = set()
    for line in ours.splitlines():
        if line.startswith("| `"):
            found |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return found


def test_deploy_follows_register_under_the_gates_pass_condition_in_every_round() -> None:
    everything = tasks()
    deploys = sorted(name for name in everything if base_name(name) == "deploy-model")
    assert deploys == ["deploy-model", "deploy-model-2", "deploy-model-3"]
    for deploy in deploys:
        component, task = everything[deploy]
        register = deploy.replace("deploy-model", "register-model")
        assert everything[register][0] == component  # the same dsl.If
        assert task["dependentTasks"] == [register]
        source = task["inputs"]["artifacts"]["registered"]["taskOutputArtifact"]
        assert source == {"outputArtifactKey": "registered", "producerTask": register}
        guard = next(t for t in everything.values() if t[1]["componentRef"]["name"] == component)[1]
        assert guard["triggerPolicy"]["condition"].endswith("-Output'] == 'pass'")


@pytest.mark.parametrize("executor", sorted(EXECUTORS))
def test_every_task_takes_its_configuration_from_the_configmap_and_secret(executor: str) -> None:
    config = KUBERNETES[executor]
    for kind, name_key, key_field, name, required, every in (
        (
            "configMapAsEnv",
            "configMapName",
            "configMapKey",
            CONFIG_MAP,
            REQUIRED_CONFIG,
            config_map_keys(),
        ),
        ("secretAsEnv", "secretName", "secretKey", SECRET, REQUIRED_CREDENTIALS, secret_keys()),
    ):
        entries = config[kind]
        assert {entry[name_key] for entry in entries} == {name}
        by_optional: dict[bool, set[str]] = {}
        for entry in entries:
            for pair in entry["keyToEnv"]:
                assert pair[key_field] == pair["envVar"]  # the keys are the variable names
                by_optional.setdefault(entry["optional"], set()).add(pair["envVar"])
        assert by_optional[False] == set(required)
        assert by_optional[False] | by_optional[True] == set(every)
        assert not by_optional[False] & by_optional[True]


def test_every_documented_variable_reaches_the_tasks_and_credentials_only_from_the_secret() -> None:
    given = set(config_map_keys()) | set(secret_keys())
    assert given == documented_variables()
    credentials = {
        "KAIZEN_S3_ACCESS_KEY",
        "KAIZEN_S3_SECRET_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "KAIZEN_REDIS_CONNECTION",
    }
    assert credentials <= set(secret_keys())
    assert not credentials & set(config_map_keys())
    # A tracking URI may carry a password: either place, so the Secret can hold it.
    assert set(config_map_keys()) & set(secret_keys()) == {"KAIZEN_MLFLOW_TRACKING_URI"}


def test_the_manifests_give_every_task_the_keys_it_requires() -> None:
    config = yaml.safe_load((ROOT / "manifests" / "base" / "config.yaml").read_text())
    assert config["metadata"]["name"] == CONFIG_MAP
    assert set(REQUIRED_CONFIG) <= set(config["data"])
    assert config["data"]["KAIZEN_DEPLOY_TARGET"] == "kserve"
    for overlay in ("dev", "prod"):
        example = ROOT / "manifests" / "overlays" / overlay / "credentials.env.example"
        keys = {
            line.split("=", 1)[0]
            for line in example.read_text().splitlines()
            if line and not line.startswith("#")
        }
        assert set(REQUIRED_CREDENTIALS) <= keys, overlay


def test_volumes_the_feature_build_the_shared_one_tuning_the_trials_one() -> None:
    mounts = {
        executor: [(m["constant"], m["mountPath"]) for m in config.get("pvcMount", [])]
        for executor, config in KUBERNETES.items()
    }
    assert mounts.pop("exec-build-features") == [(FEATURE_DATA_PVC, FEATURE_DATA_MOUNT)]
    for tune in ("exec-tune-model", "exec-tune-model-2", "exec-tune-model-3"):
        assert mounts.pop(tune) == [(TUNING_DATA_PVC, "/mnt/data")]
    assert all(not found for found in mounts.values()), mounts


def test_retries_and_caching_are_as_each_tasks_contract_allows() -> None:
    executed = {
        name: task
        for name, (_, task) in tasks().items()
        if task["componentRef"]["name"].replace("comp-", "exec-") in EXECUTORS
    }
    assert {base_name(name) for name in executed} == set(RETRIES)
    for name, task in executed.items():
        retries = RETRIES[base_name(name)]
        policy = task.get("retryPolicy")
        if retries:
            assert policy["maxRetryCount"] == retries, name
            assert policy["backoffDuration"] == "10s" and policy["backoffFactor"] == 2.0, name
        else:
            assert policy is None, name
        cached = task.get("cachingOptions", {}).get("enableCache") is True
        assert cached is (base_name(name) not in UNCACHED), name
