"""Staged feature builds: nothing serving reads changes until a build has passed its checks.

A feature build writes new parquet sources, changes the Feast registry and loads the online
store. Done in place, a build that fails half-way (or is killed) leaves serving with a mix
of old and new state. Here every build works on copies and publishes them in one commit at
the end, once every check that can fail before training has passed. Under
``$KAIZEN_HOME/feast`` (what serving reads is marked *live*):

``registry.db``, ``online_store.db``
    *live*: the Feast registry and SQLite online store, at the paths
    ``feature_repo/feature_store.yaml`` names.
``data/<generation>/``
    a build's parquet sources, written once and never rewritten; the registry's sources
    point into one of them.
``data/current``
    a link to the live generation; ``feature_repo/data_sources.py`` reads it, so a hand-run
    ``feast apply`` records the same source paths as the last build.
``staging/<generation>/feast/``
    a build's registry and online store: copies of the live ones, which the build applies,
    materializes into and retrieves its training rows from.
``commit.json``
    present only while a commit is under way (see :func:`commit`).
``.lock``
    one build (or recovery) at a time per home.

A failed build deletes its staging folder and its generation; a killed one leaves them,
and the next build (or :func:`recover`) removes them. Either way the live files are never
opened for writing, so they stay byte for byte as the last good build left them.

The commit publishes the staged registry with ``os.replace`` (a reader sees the old file or
the new one) and copies the staged online store into the live one with SQLite's backup API
in one write transaction (readers with an open connection see the old rows or the new ones;
a crash mid-copy is rolled back by SQLite's journal). Those are two steps, so the commit
first writes ``commit.json``; if the process dies between them, the next :func:`recover`
finds the journal and finishes the commit from the staged files, which it keeps until
then. Every step can be repeated.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kaizen.platform.fileio import write_json_atomic
from kaizen.platform.locks import LockTimeoutError, file_lock

REGISTRY_FILE = "registry.db"
ONLINE_STORE_FILE = "online_store.db"
CURRENT_LINK = "current"
JOURNAL_FILE = "commit.json"
LOCK_FILE = ".lock"
# A build waits this long for another build of the same home to finish.
BUILD_LOCK_TIMEOUT_S = 3600.0
# Generations kept besides the live one, for readers that still hold an older registry.
PREVIOUS_GENERATIONS_KEPT = 1


def feast_dir(kaizen_home: str | os.PathLike[str]) -> Path:
    """Where ``feature_repo/feature_store.yaml`` keeps Feast's state: ``$KAIZEN_HOME/feast``."""
    return Path(kaizen_home).expanduser().absolute() / "feast"


def data_root(kaizen_home: str | os.PathLike[str]) -> Path:
    """Folder of the source generations: ``$KAIZEN_HOME/feast/data``."""
    return feast_dir(kaizen_home) / "data"


def current_generation(kaizen_home: str | os.PathLike[str]) -> Path | None:
    """The live generation's source folder, or None before the first committed build."""
    link = data_root(kaizen_home) / CURRENT_LINK
    if not link.is_symlink():
        return None
    return data_root(kaizen_home) / os.readlink(link)


def new_generation_name() -> str:
    """A generation's folder name: its UTC start time (so names sort by age) and a nonce."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class StagedBuild:
    """One build's private state until :func:`commit`.

    Attributes:
        kaizen_home: The live home (absolute).
        generation: Name of the build's generation: UTC time then a random suffix, so
            names sort by age.
        data_dir: Where the build writes its parquet sources.
        home: A home of its own (``staging/<generation>``) whose ``feast/`` holds the
            build's registry and online store: open the feature repo with this home and
            ``KAIZEN_FEAST_DATA_URI=data_dir``.
    """

    kaizen_home: Path
    generation: str
    data_dir: Path
    home: Path

    @property
    def registry(self) -> Path:
        return self.home / "feast" / REGISTRY_FILE

    @property
    def online_store(self) -> Path:
        return self.home / "feast" / ONLINE_STORE_FILE


@contextlib.contextmanager
def staged_build(
    kaizen_home: str | os.PathLike[str], lock_timeout_s: float = BUILD_LOCK_TIMEOUT_S
) -> Iterator[StagedBuild]:
    """Hold the home's build lock and give the build copies of the live registry and store.

    Finishes an interrupted commit and removes what killed builds left first. If the block
    raises, the build's staging folder and generation are deleted and the live files are
    untouched; the block calls :func:`commit` once everything has passed.

    Raises:
        LockTimeoutError: another build held the home for ``lock_timeout_s`` seconds.
    """
    live = feast_dir(kaizen_home)
    live.mkdir(parents=True, exist_ok=True)
    with _build_lock(live, lock_timeout_s):
        _recover_locked(live)
        generation = new_generation_name()
        staged = StagedBuild(
            kaizen_home=live.parent,
            generation=generation,
            data_dir=live / "data" / generation,
            home=live / "staging" / generation,
        )
        try:
            staged.registry.parent.mkdir(parents=True)
            staged.data_dir.mkdir(parents=True)
            if (live / REGISTRY_FILE).is_file():
                shutil.copyfile(live / REGISTRY_FILE, staged.registry)
            if (live / ONLINE_STORE_FILE).is_file():
                _sqlite_copy(live / ONLINE_STORE_FILE, staged.online_store, source_read_only=True)
            yield staged
        except BaseException:
            if not (live / JOURNAL_FILE).is_file():
                shutil.rmtree(staged.home, ignore_errors=True)
                shutil.rmtree(staged.data_dir, ignore_errors=True)
            raise


def commit(staged: StagedBuild) -> None:
    """Publish a staged build: registry, online store, then the ``data/current`` link.

    Call inside :func:`staged_build`, after every check has passed. Writes the journal
    first, so a crash part-way is finished by the next :func:`recover`.
    """
    live = feast_dir(staged.kaizen_home)
    write_json_atomic(
        live / JOURNAL_FILE,
        {"generation": staged.generation, "staging": staged.home.as_posix()},
    )
    _finish_commit(live, staged.generation, staged.home)


def recover(kaizen_home: str | os.PathLike[str]) -> bool:
    """Finish an interrupted commit and tidy what killed builds left, unless a build runs.

    For readers that open the live store (a server starting): cheap when there is nothing
    to do, and it never waits; a running build does the same itself.

    Returns:
        False if a build holds the home (nothing was done), True otherwise.
    """
    live = feast_dir(kaizen_home)
    if not (live / JOURNAL_FILE).exists() and not (live / "staging").exists():
        return True  # nothing to finish or tidy: no lock taken, nothing written
    try:
        with _build_lock(live, 0):
            _recover_locked(live)
    except LockTimeoutError:
        return False
    return True


def _recover_locked(live: Path) -> None:
    journal = live / JOURNAL_FILE
    if journal.is_file():
        entry = json.loads(journal.read_text())
        _finish_commit(live, str(entry["generation"]), Path(entry["staging"]))
    # No build runs (the caller holds the lock): every staging folder is abandoned.
    shutil.rmtree(live / "staging", ignore_errors=True)
    _remove_old_generations(live)


def _finish_commit(live: Path, generation: str, staging: Path) -> None:
    staged_registry = staging / "feast" / REGISTRY_FILE
    staged_online = staging / "feast" / ONLINE_STORE_FILE
    if staged_registry.is_file():
        os.replace(staged_registry, live / REGISTRY_FILE)
    if staged_online.is_file():
        if (live / ONLINE_STORE_FILE).is_file():
            _sqlite_copy(staged_online, live / ONLINE_STORE_FILE)
        else:
            os.replace(staged_online, live / ONLINE_STORE_FILE)
    _point_current_at(live / "data", generation)
    (live / JOURNAL_FILE).unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    with contextlib.suppress(OSError):  # only when no other staging folder is in it
        staging.parent.rmdir()
    _remove_old_generations(live)


def _point_current_at(data: Path, generation: str) -> None:
    point_link_at(data / CURRENT_LINK, generation)


def point_link_at(link: Path, generation: str) -> None:
    """Make ``link`` name the generation folder beside it, atomically (a reader follows the
    old link or the new one)."""
    temporary = link.parent / f".{link.name}.{uuid.uuid4().hex[:8]}"
    os.symlink(generation, temporary)  # relative: the folder can move
    os.replace(temporary, link)


def _remove_old_generations(live: Path) -> None:
    remove_old_generations(live / "data" / CURRENT_LINK)


def remove_old_generations(link: Path) -> None:
    """Keep the generation ``link`` names and the one before it; remove the others beside
    it. The caller holds the build lock, so any other generation is older or was abandoned
    by a build that did not commit."""
    data = link.parent
    if not data.is_dir():
        return
    current = os.readlink(link) if link.is_symlink() else None
    generations = sorted(
        entry.name
        for entry in data.iterdir()
        if entry.is_dir() and not entry.is_symlink() and not entry.name.startswith(".")
    )
    keep: set[str] = set()
    if current is not None:
        older = [name for name in generations if name < current]
        keep = {current, *older[len(older) - PREVIOUS_GENERATIONS_KEPT :]}
    for name in generations:
        if name not in keep:
            shutil.rmtree(data / name, ignore_errors=True)


def _sqlite_copy(source: Path, target: Path, *, source_read_only: bool = False) -> None:
    """Copy a SQLite database into ``target`` in one write transaction (backup API)."""
    uri = f"file:{source.as_posix()}?mode=ro" if source_read_only else source.as_posix()
    with (
        contextlib.closing(sqlite3.connect(uri, uri=source_read_only)) as origin,
        contextlib.closing(sqlite3.connect(target)) as destination,
    ):
        origin.backup(destination)


@contextlib.contextmanager
def _build_lock(live: Path, timeout_s: float) -> Iterator[None]:
    with file_lock(live / LOCK_FILE, timeout_s, record_pid=True):
        yield
