"""The deploy component, called through ``.python_func`` as the KFP executor calls it.

It loads its settings from the environment (an entry point), hands the register step's record
to the deploy step and writes what happened into its output artifact and its metadata, which
the Kubeflow UI shows. The registry is a real MLflow store under the test's KAIZEN_HOME.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kfp.dsl import Artifact

from components.deploy_model import deploy_model
from kaizen.platform.settings import Settings
from tests.support.registry import AliasRegistry, empty_store


@pytest.fixture
def registry(settings: Settings, tmp_path: Path) -> AliasRegistry:
    return AliasRegistry.create(settings, empty_store(tmp_path))


def test_deploy_model_records_the_version_the_registry_offers(
    registry: AliasRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("KAIZEN_DEPLOY_TARGET", "KAIZEN_DEPLOY_SERVER_URL"):
        monkeypatch.delenv(variable, raising=False)
    registry.add("champion", "challenger")
    version = registry.add("challenger")
    record_file = tmp_path / "registered"
    record_file.write_text(json.dumps({"version": version, "aliases": ["challenger"]}))
    registered = Artifact(name="registered", uri=str(record_file))
    deployment = Artifact(name="deployment", uri=str(tmp_path / "deployment"))

    deploy_model.python_func(registered=registered, timeout_seconds=60, deployment=deployment)

    written = json.loads(Path(deployment.path).read_text())
    assert (written["target"], written["version"], written["alias"]) == ("local", 2, "challenger")
    assert written["status"] == "recorded"
    assert deployment.metadata == {
        "target": "local",
        "version": 2,
        "alias": "challenger",
        "status": "recorded",
    }


def test_deploy_model_refuses_a_target_it_does_not_know(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kaizen.platform.settings import SettingsError

    monkeypatch.setenv("KAIZEN_DEPLOY_TARGET", "seldon")
    registered = Artifact(name="registered", uri=str(tmp_path / "registered"))
    deployment = Artifact(name="deployment", uri=str(tmp_path / "deployment"))
    with pytest.raises(SettingsError, match=r"KAIZEN_DEPLOY_TARGET.*'local' or 'kserve'"):
        deploy_model.python_func(registered=registered, timeout_seconds=60, deployment=deployment)
    assert not Path(deployment.path).exists()
