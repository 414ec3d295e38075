"""Compiled pipelines in the object store, at versioned keys that are written once.

Layout under ``pipelines/<name>/``:

- ``<version>/pipeline.yaml``: the compiled KFP spec, byte for byte as compiled.
- ``<version>/upload.json``: when it was first uploaded and from which commit (write-once).
- ``index.json``: every version with its time and commit, oldest first. It is derived from
  the ``upload.json`` records and rewritten (only when it changes) on every upload, so a
  crash or a concurrent upload never loses a version from it for longer than one upload.

``<version>`` is the first 16 hex characters of the YAML's sha256, plus ``-g<commit>``
(12 hex characters) when the git commit is known. A working tree with uncommitted changes
to tracked files adds ``-dirty`` (as ``git describe --dirty`` does): the commit alone does
not describe the code that compiled such a YAML, and the version says so instead of
pretending. Untracked files do not count, as for ``git describe``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from kaizen.platform.git import COMMIT_PATTERN, GitCommit
from kaizen.platform.names import DEFAULT_PIPELINE_NAME
from kaizen.platform.storage import KeyExistsError, ObjectStore, StorageError, sha256_bytes

PIPELINES_PREFIX = "pipelines"
REQUIRED_SECTIONS = ("pipelineInfo", "root", "deploymentSpec")
CONTENT_HASH_CHARS = 16
_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


class PipelineSpecError(ValueError):
    """A file given as a compiled pipeline is not a KFP pipeline spec."""


@dataclass(frozen=True)
class UploadResult:
    """What ``upload_pipeline`` did.

    Attributes:
        key: the versioned key of the pipeline YAML.
        uri: where it lives (``s3://bucket/key`` or ``file://...``).
        version: the version part of the key.
        content_sha256: sha256 of the YAML bytes.
        already_present: the same version was uploaded before; nothing was written.
        message: one line for people, saying which of the two happened.
    """

    key: str
    uri: str
    version: str
    content_sha256: str
    already_present: bool
    message: str


def load_pipeline_spec(yaml_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a compiled KFP pipeline YAML and return its pipeline spec document.

    Raises:
        PipelineSpecError: naming the file: it is missing, unreadable, not YAML, or not a
            compiled pipeline (its first document lacks pipelineInfo, root or
            deploymentSpec).
    """
    path = Path(yaml_path)
    return _parse_spec(path, _read_pipeline_file(path))


def _read_pipeline_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PipelineSpecError(f"pipeline file {path} does not exist") from None
    except OSError as error:
        raise PipelineSpecError(f"cannot read pipeline file {path}: {error}") from None


def _parse_spec(path: Path, data: bytes) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PipelineSpecError(
            f"{path} is not UTF-8 text ({error}), not a pipeline spec"
        ) from None
    try:
        # A compiled spec may carry a second document (the Kubernetes platform spec).
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as error:
        where = ""
        mark = getattr(error, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        raise PipelineSpecError(f"{path} is not valid YAML{where}: {error}") from None
    hint = "compile the pipeline first (`kaizen compile`) and upload the YAML it writes"
    if not documents:
        raise PipelineSpecError(f"{path} is empty, not a compiled KFP pipeline spec; {hint}")
    spec = documents[0]
    if not isinstance(spec, dict):
        raise PipelineSpecError(
            f"{path} is not a compiled KFP pipeline spec: its top level is a "
            f"{type(spec).__name__}, expected a mapping with {', '.join(REQUIRED_SECTIONS)}; "
            f"{hint}"
        )
    missing = [section for section in REQUIRED_SECTIONS if section not in spec]
    if missing:
        raise PipelineSpecError(
            f"{path} is not a compiled KFP pipeline spec: missing top-level "
            f"{', '.join(missing)} (expected {', '.join(REQUIRED_SECTIONS)}); {hint}"
        )
    return spec


def pipeline_version(content_sha256: str, commit: GitCommit | None) -> str:
    """The version id of a pipeline: content hash prefix, then the commit when known."""
    version = content_sha256[:CONTENT_HASH_CHARS]
    if commit is not None:
        version += f"-g{commit.short}" + ("-dirty" if commit.dirty else "")
    return version


def pipeline_key(name: str, version: str) -> str:
    return f"{PIPELINES_PREFIX}/{name}/{version}/pipeline.yaml"


def index_key(name: str) -> str:
    return f"{PIPELINES_PREFIX}/{name}/index.json"


def _record_key(name: str, version: str) -> str:
    return f"{PIPELINES_PREFIX}/{name}/{version}/upload.json"


def _as_commit(value: GitCommit | str | None) -> GitCommit | None:
    if value is None or isinstance(value, GitCommit):
        return value
    sha = value.strip().lower()
    if not COMMIT_PATTERN.match(sha):
        raise ValueError(f"git commit must be 7 to 64 hex characters, got {value!r}")
    return GitCommit(sha=sha)


def _dumps(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()


def list_pipeline_versions(
    store: ObjectStore, name: str = DEFAULT_PIPELINE_NAME
) -> list[dict[str, Any]]:
    """Every uploaded version of pipeline ``name``, oldest first, from the upload records.

    Each entry holds ``version``, ``key``, ``content_sha256``, ``git_commit`` (or ``None``),
    ``git_dirty`` and ``uploaded_at`` (ISO 8601, UTC).
    """
    prefix = f"{PIPELINES_PREFIX}/{name}/"
    records = [
        json.loads(store.get_bytes(key))
        for key in store.list(prefix)
        if key.endswith("/upload.json") and key.count("/") == prefix.count("/") + 1
    ]
    return sorted(records, key=lambda record: (record["uploaded_at"], record["version"]))


def _refresh_index(store: ObjectStore, name: str) -> list[dict[str, Any]]:
    """Rewrite ``index.json`` from the upload records if it would change; return them."""
    versions = list_pipeline_versions(store, name)
    index = _dumps({"name": name, "versions": versions})
    key = index_key(name)
    if not (store.exists(key) and store.get_bytes(key) == index):
        store.put_bytes(key, index, overwrite=True)
    return versions


def _put_once(store: ObjectStore, key: str, data: bytes) -> bool:
    """Write ``data`` at ``key`` unless something is there; return whether it was written."""
    if store.exists(key):
        return False
    try:
        store.put_bytes(key, data)
    except KeyExistsError:  # a concurrent upload of the same version got there first
        return False
    return True


def upload_pipeline(
    store: ObjectStore,
    yaml_path: str | os.PathLike[str],
    *,
    name: str = DEFAULT_PIPELINE_NAME,
    git_commit: GitCommit | str | None = None,
    now: datetime | None = None,
) -> UploadResult:
    """Store a compiled pipeline YAML at its versioned key; a repeated upload is a no-op.

    Args:
        store: the object store (``kaizen.platform.storage.open_store(settings)``).
        yaml_path: the compiled pipeline (``kaizen compile`` output).
        name: the pipeline's folder under ``pipelines/``.
        git_commit: the commit the YAML was compiled from (``git_commit()``, or a hex sha
            such as ``$GITHUB_SHA``); ``None`` when unknown.
        now: upload time to record (default: the current UTC time).

    Returns:
        The key, URI and version, and whether that version was already present.

    Raises:
        PipelineSpecError: ``yaml_path`` is not a compiled KFP pipeline spec.
        ValueError: ``name`` or ``git_commit`` is malformed.
        StorageError: the version key holds other content, or the store failed.
    """
    if not _NAME_PATTERN.match(name):
        raise ValueError(
            f"pipeline name must be lower-case letters, digits, '.', '_' or '-', got {name!r}"
        )
    commit = _as_commit(git_commit)
    path = Path(yaml_path)
    data = _read_pipeline_file(path)
    _parse_spec(path, data)
    digest = sha256_bytes(data)
    version = pipeline_version(digest, commit)
    key = pipeline_key(name, version)
    already_present = not _put_once(store, key, data)
    if already_present:
        stored = sha256_bytes(store.get_bytes(key))
        if stored != digest:
            raise StorageError(
                f"pipeline version key {key!r} already holds other content (sha256 {stored}, "
                f"uploading {digest} from {path}); refusing to call it already uploaded"
            )
    uri = store.uri(key)
    uploaded_at = (now or datetime.now(UTC)).astimezone(UTC)
    record = {
        "version": version,
        "key": key,
        "content_sha256": digest,
        "git_commit": commit.sha if commit else None,
        "git_dirty": commit.dirty if commit else False,
        "uploaded_at": uploaded_at.isoformat(timespec="milliseconds"),
    }
    # Write-once, so the first upload's time and commit stay. Tried even when the YAML
    # was already there, in case an earlier upload died between the two writes.
    _put_once(store, _record_key(name, version), _dumps(record))
    versions = _refresh_index(store, name)
    if already_present:
        message = f"pipeline {name!r} version {version} is already at {uri}; nothing uploaded"
    else:
        message = f"uploaded pipeline {name!r} version {version} to {uri}"
        if commit is not None and commit.dirty:
            message += f" (compiled from uncommitted changes on top of commit {commit.short})"
        twins = [
            v["version"]
            for v in versions
            if v["content_sha256"] == digest and v["version"] != version
        ]
        if twins:
            message += f"; same YAML as version(s) {', '.join(twins)} (another commit)"
    return UploadResult(
        key=key,
        uri=uri,
        version=version,
        content_sha256=digest,
        already_present=already_present,
        message=message,
    )
