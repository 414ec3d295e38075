"""Compiled pipelines at versioned keys, on a local folder and on S3 (moto, real minio client)."""

from __future__ import annotations

import itertools
import json
import logging
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from kaizen.pipeline.store import (
    PipelineSpecError,
    index_key,
    list_pipeline_versions,
    upload_pipeline,
)
from kaizen.platform.git import GitCommit, git_commit
from kaizen.platform.storage import (
    LocalObjectStore,
    ObjectStore,
    S3ObjectStore,
    StorageError,
    sha256_bytes,
)

COMMIT = "0123456789abcdef0123456789abcdef01234567"
T1 = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
T2 = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
_bucket_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    return S3ObjectStore(
        request.getfixturevalue("moto_endpoint"),
        f"kaizen-pipelines-{next(_bucket_numbers)}",
        "AKIAKAIZENTESTACCESS7",
        "kaizen-test-secret-9f2c41d07e",
        secure=False,
        region="us-east-1",
        create_bucket=True,
    )


@pytest.fixture
def compiled(repo_root: Path, tmp_path: Path) -> Path:
    """A copy of the checked-in compiled training pipeline (two YAML documents)."""
    copy = tmp_path / "training_pipeline.yaml"
    copy.write_bytes((repo_root / "pipelines" / "training_pipeline.yaml").read_bytes())
    return copy


def _snapshot(store: ObjectStore) -> dict[str, bytes]:
    return {key: store.get_bytes(key) for key in store.list()}


def test_upload_stores_the_yaml_at_a_content_and_commit_versioned_key(
    store: ObjectStore, compiled: Path
) -> None:
    digest = sha256_bytes(compiled.read_bytes())
    result = upload_pipeline(store, compiled, git_commit=GitCommit(COMMIT), now=T1)
    version = f"{digest[:16]}-g{COMMIT[:12]}"
    assert result.version == version
    assert result.key == f"pipelines/kaizen-training/{version}/pipeline.yaml"
    assert result.uri == store.uri(result.key)
    assert result.content_sha256 == digest
    assert not result.already_present
    assert (
        result.message == f"uploaded pipeline 'kaizen-training' version {version} to {result.uri}"
    )
    assert store.get_bytes(result.key) == compiled.read_bytes()
    index = json.loads(store.get_bytes(index_key("kaizen-training")))
    assert index == {
        "name": "kaizen-training",
        "versions": [
            {
                "version": version,
                "key": result.key,
                "content_sha256": digest,
                "git_commit": COMMIT,
                "git_dirty": False,
                "uploaded_at": "2026-11-23T17:00:00.000+00:00",
            }
        ],
    }


def _writes_seen_by_server(caplog: pytest.LogCaptureFixture, bucket: str) -> list[str]:
    # moto's server logs every request it receives (werkzeug access log).
    return [
        message
        for message in caplog.messages
        if f" /{bucket}/" in message and ('"PUT ' in message or '"POST ' in message)
    ]


def test_uploading_the_same_pipeline_twice_is_a_no_op_that_says_so(
    store: ObjectStore, compiled: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="werkzeug")
    first = upload_pipeline(store, compiled, git_commit=COMMIT, now=T1)
    before = _snapshot(store)
    stamps = (
        {p: p.stat().st_mtime_ns for p in store.root.rglob("*")}
        if isinstance(store, LocalObjectStore)
        else {}
    )
    if isinstance(store, S3ObjectStore):
        assert len(_writes_seen_by_server(caplog, store.bucket)) == 3  # yaml, record, index
    caplog.clear()
    second = upload_pipeline(store, compiled, git_commit=COMMIT, now=T2)
    assert second.already_present
    assert (second.key, second.version, second.uri) == (first.key, first.version, first.uri)
    assert second.message == (
        f"pipeline 'kaizen-training' version {first.version} is already at {first.uri}; "
        "nothing uploaded"
    )
    assert _snapshot(store) == before  # the first upload time is kept, index untouched
    if isinstance(store, LocalObjectStore):
        assert {p: p.stat().st_mtime_ns for p in store.root.rglob("*")} == stamps
    else:
        assert _writes_seen_by_server(caplog, store.bucket) == []


def test_each_change_gets_its_own_version_listed_in_order(
    store: ObjectStore, compiled: Path
) -> None:
    first = upload_pipeline(store, compiled, now=T1)
    assert first.version == sha256_bytes(compiled.read_bytes())[:16]  # no commit known
    compiled.write_text(compiled.read_text().replace("kaizen-component:0.1.0", "c:0.2.0"))
    second = upload_pipeline(store, compiled, now=T2)
    assert second.version != first.version and not second.already_present
    assert store.get_bytes(first.key) != store.get_bytes(second.key)
    listed = [entry["version"] for entry in list_pipeline_versions(store)]
    assert listed == [first.version, second.version]
    index = json.loads(store.get_bytes(index_key("kaizen-training")))
    assert [entry["version"] for entry in index["versions"]] == listed


def test_same_yaml_from_another_commit_is_a_new_version_that_says_so(
    store: ObjectStore, compiled: Path
) -> None:
    first = upload_pipeline(store, compiled, git_commit=COMMIT, now=T1)
    other = "fedcba9876543210fedcba9876543210fedcba98"
    second = upload_pipeline(store, compiled, git_commit=other, now=T2)
    assert not second.already_present
    assert second.version.endswith(f"-g{other[:12]}")
    assert f"same YAML as version(s) {first.version}" in second.message


def test_dirty_tree_is_marked_in_the_version(store: ObjectStore, compiled: Path) -> None:
    result = upload_pipeline(store, compiled, git_commit=GitCommit(COMMIT, dirty=True))
    assert result.version.endswith(f"-g{COMMIT[:12]}-dirty")
    assert f"uncommitted changes on top of commit {COMMIT[:12]}" in result.message
    (entry,) = list_pipeline_versions(store)
    assert entry["git_dirty"] is True


def test_an_upload_that_died_halfway_is_completed_by_the_next(
    store: ObjectStore, compiled: Path
) -> None:
    version = sha256_bytes(compiled.read_bytes())[:16]
    # As if an upload had died right after writing the YAML: no record, no index.
    store.put_bytes(f"pipelines/kaizen-training/{version}/pipeline.yaml", compiled.read_bytes())
    result = upload_pipeline(store, compiled, now=T1)
    assert result.already_present and result.version == version
    assert [entry["version"] for entry in list_pipeline_versions(store)] == [version]
    index = json.loads(store.get_bytes(index_key("kaizen-training")))
    assert [entry["version"] for entry in index["versions"]] == [version]


def test_version_key_holding_other_content_is_reported(store: ObjectStore, compiled: Path) -> None:
    digest = sha256_bytes(compiled.read_bytes())
    store.put_bytes(f"pipelines/kaizen-training/{digest[:16]}/pipeline.yaml", b"something else")
    with pytest.raises(StorageError, match="already holds other content"):
        upload_pipeline(store, compiled)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nspec: {}\n",
            "is not a compiled KFP pipeline spec: missing top-level pipelineInfo, root, "
            "deploymentSpec",
        ),
        (
            "pipelineInfo: {name: x}\nroot: {dag: {}}\n",
            "missing top-level deploymentSpec",
        ),
        ("- a\n- b\n", "its top level is a list, expected a mapping"),
        ("pipelineInfo: [unclosed\n", "is not valid YAML at line 2"),
        ("", "is empty"),
    ],
    ids=["katib-experiment", "no-deployment-spec", "list", "broken-yaml", "empty"],
)
def test_a_file_that_is_not_a_compiled_pipeline_is_refused(
    store: ObjectStore, tmp_path: Path, content: str, message: str
) -> None:
    bad = tmp_path / "not_a_pipeline.yaml"
    bad.write_text(content)
    with pytest.raises(PipelineSpecError, match=message) as refused:
        upload_pipeline(store, bad)
    assert str(bad) in str(refused.value)
    assert list(store.list()) == []


def test_missing_file_and_bad_arguments_are_refused(store: ObjectStore, compiled: Path) -> None:
    with pytest.raises(PipelineSpecError, match=r"pipeline file .*nope\.yaml does not exist"):
        upload_pipeline(store, compiled.parent / "nope.yaml")
    with pytest.raises(ValueError, match="pipeline name must be"):
        upload_pipeline(store, compiled, name="../escape")
    with pytest.raises(ValueError, match="git commit must be 7 to 64 hex characters"):
        upload_pipeline(store, compiled, git_commit="main")
    assert list(store.list()) == []


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=Kaizen", "-c", "user.email=k@example.com", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_git_commit_reads_head_and_dirty_state(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    assert git_commit(repo) is None  # not a repository yet
    _git(repo, "init", "-q")
    assert git_commit(repo) is None  # no commit yet
    (repo / "pipeline.py").write_text("v1\n")
    _git(repo, "add", "pipeline.py")
    _git(repo, "commit", "-q", "-m", "first")
    head = _git(repo, "rev-parse", "HEAD")
    assert git_commit(repo) == GitCommit(head, dirty=False)
    (repo / "scratch.txt").write_text("untracked\n")
    assert git_commit(repo) == GitCommit(head, dirty=False)  # untracked files do not count
    (repo / "pipeline.py").write_text("v2\n")
    assert git_commit(repo) == GitCommit(head, dirty=True)
