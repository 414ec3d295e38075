"""docs/configuration.md lists every variable a Kaizen process or a feature configuration reads."""

from __future__ import annotations

import re
from pathlib import Path

from kaizen.platform.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "configuration.md").read_text()


def documented() -> set[str]:
    return set(re.findall(r"`([A-Z][A-Z0-9_]+)`", DOC))


def test_every_setting_is_documented_by_its_variable_name() -> None:
    variables = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    assert variables - documented() == set()


def test_every_variable_a_feature_configuration_expands_is_documented() -> None:
    expanded: set[str] = set()
    for config in (ROOT / "feature_repo").rglob("feature_store.yaml"):
        body = "\n".join(line.split("#", 1)[0] for line in config.read_text().splitlines())
        expanded |= set(re.findall(r"\$\{(\w+)\}", body))
    assert expanded, "no feature_store.yaml found"
    assert expanded - documented() - {"KAIZEN_HOME"} == set()


def test_every_variable_the_feature_repo_reads_is_documented() -> None:
    read = set()
    for module in (ROOT / "feature_repo").glob("*.py"):
        read |= set(re.findall(r"environ\.get\(\"([A-Z_]+)\"", module.read_text()))
    assert read - documented() - {"KAIZEN_HOME"} == set()
