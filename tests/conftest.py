"""Shared fixtures. Every test gets its own KAIZEN_HOME so no test sees another's state.

Library code takes its settings as an argument: a test of it passes the ``settings`` fixture
(or builds its own ``Settings(home=...)``). ``KAIZEN_HOME`` is also set in the environment,
for what reads it there: the entry points (CLI commands, components, the server's ``main``)
and the programs a test starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from kaizen.platform.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def kaizen_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "kaizen-home"
    monkeypatch.setenv("KAIZEN_HOME", str(home))
    monkeypatch.delenv("KAIZEN_WEBHOOK_URL", raising=False)
    return home


@pytest.fixture
def settings(kaizen_home: Path) -> Settings:
    """Settings for library calls: this test's own home, every other field at its default."""
    from kaizen.platform.settings import Settings

    return Settings(home=kaizen_home)


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT
