"""Shared fixtures. Every test gets its own KAIZEN_HOME so no test sees another's state."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def kaizen_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "kaizen-home"
    monkeypatch.setenv("KAIZEN_HOME", str(home))
    monkeypatch.delenv("KAIZEN_WEBHOOK_URL", raising=False)
    return home


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT
