"""Settings are read at the entry points only and passed down to library code.

Only a program's entry point reads ``KAIZEN_*`` (``load_settings``): the CLI commands, the
pipeline components, the model server's ``main``, the supervisor and the trial program.
Everything below takes a ``Settings`` (or the value it needs) as an argument, so a library
call never depends on the environment of whoever happens to call it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
READERS = {"load_settings", "cached_settings"}
# Modules allowed to read the settings, relative to the repository root.
ENTRY_POINTS = {
    "kaizen/cli.py",  # while the CLI becomes the kaizen/cli/ package
    "kaizen/serving/server.py",
    "kaizen/serving/supervisor.py",
    "kaizen/training/trial.py",
}
ENTRY_POINT_FOLDERS = ("kaizen/cli/", "components/")
# Where the reader is defined (and nothing calls it).
DEFINITION = "kaizen/platform/settings.py"


def _is_entry_point(relative: str) -> bool:
    return relative in ENTRY_POINTS or relative.startswith(ENTRY_POINT_FOLDERS)


def _reads_settings(source: str, filename: str) -> list[int]:
    """Lines calling (or importing) ``load_settings``/``cached_settings`` in ``source``."""
    lines: list[int] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call):
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else None
            if isinstance(function, ast.Name):
                name = function.id
            if name in READERS:
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and any(a.name in READERS for a in node.names):
            lines.append(node.lineno)
    return sorted(set(lines))


def _modules() -> list[Path]:
    found = sorted((REPO_ROOT / "kaizen").rglob("*.py"))
    found += sorted((REPO_ROOT / "components").rglob("*.py"))
    return found


def test_only_entry_points_read_the_settings() -> None:
    offenders = []
    for path in _modules():
        relative = path.relative_to(REPO_ROOT).as_posix()
        if relative == DEFINITION or _is_entry_point(relative):
            continue
        lines = _reads_settings(path.read_text(encoding="utf-8"), relative)
        offenders += [f"{relative}:{line}" for line in lines]
    assert not offenders, (
        "library code reads the settings itself; take a Settings argument and let the entry "
        f"point pass it: {offenders}"
    )


def test_the_settings_module_calls_nothing_that_reads_them() -> None:
    source = (REPO_ROOT / DEFINITION).read_text(encoding="utf-8")
    tree = ast.parse(source)
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert "load_settings" in defined
    assert "cached_settings" not in defined  # nothing reads settings behind a cache
    calls = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in READERS
    ]
    assert calls == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from kaizen.platform.settings import load_settings\nload_settings()\n", [1, 2]),
        ("import kaizen.platform.settings as s\nx = s.load_settings().home\n", [2]),
        (
            "def f():\n    from kaizen.platform import settings\n    settings.cached_settings()\n",
            [3],
        ),
        ("from kaizen.platform.settings import Settings\nSettings(home='x')\n", []),
        ("def f(settings):\n    return settings.home\n", []),
    ],
)
def test_the_scan_finds_every_way_of_reading_them(source: str, expected: list[int]) -> None:
    assert _reads_settings(source, "example.py") == expected


def test_the_entry_points_exist() -> None:
    # An entry point that moved would silently widen the allowance; name only real files.
    missing = [
        name for name in ENTRY_POINTS - {"kaizen/cli.py"} if not (REPO_ROOT / name).is_file()
    ]
    assert missing == []
    assert (
        any((REPO_ROOT / "kaizen" / "cli").glob("*.py")) or (REPO_ROOT / "kaizen/cli.py").is_file()
    )
