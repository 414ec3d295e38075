"""The git commit the code came from, for versioned pipeline keys and run lineage."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

COMMIT_CHARS = 12
COMMIT_PATTERN = re.compile(r"^[0-9a-f]{7,64}$")
_SOURCE_TREE = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class GitCommit:
    """The commit the code came from, and whether tracked files differed from it."""

    sha: str
    dirty: bool = False

    @property
    def short(self) -> str:
        return self.sha[:COMMIT_CHARS]


def git_commit(repo: str | os.PathLike[str] | None = None) -> GitCommit | None:
    """The commit checked out in ``repo`` (default: this source tree), or ``None``.

    Args:
        repo: a folder inside a git working tree.

    Returns:
        The ``HEAD`` commit and whether tracked files have uncommitted changes; ``None``
        when git is not installed, ``repo`` is not in a git working tree, or git fails.
    """
    folder = Path(repo) if repo is not None else _SOURCE_TREE

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()

    try:
        sha = git("rev-parse", "--verify", "HEAD")
        changes = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return None
    if not COMMIT_PATTERN.match(sha):
        return None
    return GitCommit(sha=sha, dirty=bool(changes))
