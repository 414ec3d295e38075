"""The folder tree is the layer map: no module imports from a layer above its own.

Every ``import kaizen.X`` / ``from kaizen.X import`` (at module level or inside a function,
where the heavy imports live) is checked against the order in ``docs/architecture.md``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# bottom to top; packages on one rank may import each other
RANKS: dict[str, int] = {
    "platform": 0,
    "data": 1,
    "features": 2,
    "training": 2,
    "evaluation": 2,
    "tuning": 2,
    "registry": 2,
    "steps": 3,
    "monitoring": 3,
    "pipeline": 4,
    "serving": 4,
    "cli": 5,
    "rehearsal": 5,
}
# Tuning stands on its own: it runs the trial program as a process, never imports training.
ONLY_BELOW = {
    "tuning": {"platform", "tuning"},
    "data": {"platform", "data"},
    # The rehearsal drives the compiled pipeline and the images, not the library's cores.
    "rehearsal": {"platform", "pipeline", "rehearsal"},
}
# Entry points of their own that no other package imports.
IMPORTED_BY_NOTHING = {"rehearsal"}


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return [(line, name) for line, name in found if name.split(".")[0] == "kaizen"]


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_kaizen_package_has_a_rank() -> None:
    packages = {
        path.name for path in (ROOT / "kaizen").iterdir() if (path / "__init__.py").is_file()
    }
    assert packages == set(RANKS), "add the new package to RANKS and to docs/architecture.md"
    loose = sorted(
        path.name for path in (ROOT / "kaizen").glob("*.py") if path.name != "__init__.py"
    )
    assert loose == [], f"modules outside any layer: {loose}"


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "kaizen").rglob("*.py")),
    ids=lambda path: str(path.relative_to(ROOT)),
)
def test_no_import_runs_up_a_layer(path: Path) -> None:
    own = path.relative_to(ROOT / "kaizen").parts[0]
    if own not in RANKS:
        return
    wrong = []
    for line, module in _imports(path):
        target = _package(module)
        if target is None or target == own:
            continue
        allowed = ONLY_BELOW.get(own)
        if target in IMPORTED_BY_NOTHING:
            wrong.append(f"line {line}: {module} (nothing imports {target})")
        elif allowed is not None and target not in allowed:
            wrong.append(f"line {line}: {module} ({own} may import only {sorted(allowed)})")
        elif RANKS[target] > RANKS[own]:
            wrong.append(f"line {line}: {module} ({target} is above {own})")
    assert not wrong, f"{path.relative_to(ROOT)} imports upwards:\n  " + "\n  ".join(wrong)
