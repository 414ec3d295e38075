"""The dependency groups each image installs: serving carries no trainer or tracking server."""

from __future__ import annotations

import importlib.metadata
import tomllib
from types import ModuleType
from typing import Any

import pytest
from packaging.requirements import Requirement

from tests.support.containers import REPO_ROOT


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def _names(requirements: list[str]) -> set[str]:
    return {Requirement(line).name.lower() for line in requirements}


def test_the_serving_image_leaves_out_the_pipeline_and_the_tracking_server(
    pyproject: dict[str, Any], pyproject_requirements: ModuleType
) -> None:
    serving = _names(pyproject_requirements.requirements(pyproject, ["serving"]))

    assert serving >= {"kserve", "tensorflow", "keras", "feast", "mlflow-skinny", "boto3"}
    left_out = {
        "kfp",
        "kfp-kubernetes",
        "kubeflow-katib-api",
        "optuna",
        "cmaes",
        "pandera",
        "scikit-learn",
        "matplotlib",
        "mlflow",  # the tracking server and UI; the client is mlflow-skinny
        "pyspark",
    }
    assert not serving & left_out


def test_each_group_contains_the_one_below(
    pyproject: dict[str, Any], pyproject_requirements: ModuleType
) -> None:
    core = set(pyproject_requirements.requirements(pyproject, []))
    serving = set(pyproject_requirements.requirements(pyproject, ["serving"]))
    pipeline = set(pyproject_requirements.requirements(pyproject, ["pipeline"]))
    dev = set(pyproject_requirements.requirements(pyproject, ["dev"]))

    # `pip install -e ".[dev]"` installs everything either image runs, so the tests run it.
    assert core < serving < pipeline < dev
    assert not any(line.lower().startswith("kaizen-mlops") for line in dev)


def test_the_tested_environment_satisfies_what_the_serving_image_installs(
    pyproject: dict[str, Any], pyproject_requirements: ModuleType
) -> None:
    outside = []
    for line in pyproject_requirements.requirements(pyproject, ["serving"]):
        requirement = Requirement(line)
        installed = importlib.metadata.version(requirement.name)
        if not requirement.specifier.contains(installed, prereleases=True):
            outside.append(f"{requirement} (installed: {installed})")

    assert not outside


def test_self_references_expand_once_and_unknown_extras_are_refused(
    pyproject_requirements: ModuleType,
) -> None:
    project = {
        "project": {
            "name": "Demo_Project",
            "dependencies": ["a>=1"],
            "optional-dependencies": {
                "x": ["b", "demo-project[y]"],
                "y": ["c", "a>=1", "demo.project[x]"],
            },
        }
    }

    assert pyproject_requirements.requirements(project, ["x"]) == ["a>=1", "b", "c"]
    with pytest.raises(KeyError, match="'z'"):
        pyproject_requirements.requirements(project, ["z"])
