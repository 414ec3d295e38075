"""Fixtures of the image tests: the docker/ scripts, loaded as modules."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.support.containers import load_script


@pytest.fixture(scope="session")
def build_images() -> ModuleType:
    return load_script("build_images")


@pytest.fixture(scope="session")
def pyproject_requirements() -> ModuleType:
    return load_script("pyproject_requirements")
