"""Print the requirements of the project and some of its extras, one per line.

The image builds install these first, in a layer of their own, and the project itself after
it with ``--no-deps``: a change to Kaizen's code then reinstalls only Kaizen, not TensorFlow.
Extras that name the project itself (``kaizen-mlops[serving]``) are expanded in place.

Standard library only: it runs on the bare base image, before anything is installed.

Run it::

    python3 docker/pyproject_requirements.py pyproject.toml serving
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?\s*(.*)$")


def normalize(name: str) -> str:
    """A distribution name as PyPI compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(pyproject: Mapping[str, Any], extras: Sequence[str]) -> list[str]:
    """The project's dependencies plus those of ``extras``, without duplicates, in order.

    Args:
        pyproject: the parsed ``pyproject.toml``.
        extras: names of ``[project.optional-dependencies]`` groups.

    Returns:
        Requirement strings; a group that names the project's own extras is replaced by them.

    Raises:
        KeyError: an extra the project does not define.
        ValueError: a requirement on the project itself with a version or marker.
    """
    project = pyproject["project"]
    own_name = normalize(project["name"])
    groups: Mapping[str, list[str]] = project.get("optional-dependencies", {})
    result: list[str] = []
    seen: set[str] = set()

    def add(lines: Sequence[str]) -> None:
        for line in lines:
            match = _REQUIREMENT.match(line)
            if match and normalize(match.group(1)) == own_name:
                if match.group(3).strip():
                    raise ValueError(f"{line!r}: a self-reference takes no version or marker")
                for extra in (match.group(2) or "").split(","):
                    if extra.strip():
                        add_extra(extra.strip())
            elif line not in seen:
                seen.add(line)
                result.append(line)

    expanded: set[str] = set()

    def add_extra(extra: str) -> None:
        if extra not in groups:
            raise KeyError(f"no extra {extra!r} in {sorted(groups)}")
        if extra not in expanded:
            expanded.add(extra)
            add(groups[extra])

    add(project.get("dependencies", []))
    for extra in extras:
        add_extra(extra)
    return result


def main(argv: Sequence[str]) -> int:
    if len(argv) < 1:
        print("usage: pyproject_requirements.py PYPROJECT [EXTRA ...]", file=sys.stderr)
        return 2
    with Path(argv[0]).open("rb") as file:
        pyproject = tomllib.load(file)
    print("\n".join(requirements(pyproject, argv[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
