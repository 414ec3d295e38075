"""Feature builds with another configuration: Feast's registry in S3, the online store in Redis.

``feature_repo/envs/volume/feature_store.yaml`` (what the containers of ``make rehearsal``
use) against real servers on 127.0.0.1: moto's S3 server for the registry object and
Debian's ``redis-server`` (with a password) for the online store. The build must give the
same training rows and the same online features as the embedded configuration, and one that
fails before the publish must leave the registry object, every Redis key and the data link
as they were.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from kaizen.features import build_features, load_feature_store, online_features
from kaizen.features.store import is_applied

from .test_feature_safety import history

REDIS_SERVER = shutil.which("redis-server")
DEADLINE_S = 120.0
BUCKET = "kaizen"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A real redis-server with a password: (Feast connection string, password)."""
    import redis

    assert REDIS_SERVER, "redis-server is missing: `make test` installs it (make test-deps)"
    port, password = free_port(), secrets.token_hex(16)
    server = subprocess.Popen(
        [
            REDIS_SERVER,
            "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
            "--requirepass", password, "--dir", str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    client = redis.Redis(host="127.0.0.1", port=port, password=password)
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            assert server.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server never answered"
            time.sleep(0.05)
    try:
        yield f"127.0.0.1:{port},password={password}", password
    finally:
        server.terminate()
        server.wait(timeout=60)


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def elsewhere(
    repo_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    redis_url: tuple[str, str],
    s3_endpoint: str,
) -> Path:
    """The environment of envs/volume; returns its feature_store.yaml."""
    import boto3

    for name, value in {
        "AWS_ACCESS_KEY_ID": "rehearsal",
        "AWS_SECRET_ACCESS_KEY": secrets.token_hex(16),
        "AWS_DEFAULT_REGION": "us-east-1",
        "FEAST_S3_ENDPOINT_URL": s3_endpoint,
        "KAIZEN_FEAST_REGISTRY_URI": f"s3://{BUCKET}/feast/registry.db",
        "KAIZEN_REDIS_CONNECTION": redis_url[0],
        "KAIZEN_FEAST_DATA_URI": str(tmp_path / "shared" / "feast" / "data" / "current"),
    }.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=BUCKET)
    return repo_root / "feature_repo" / "envs" / "volume" / "feature_store.yaml"


def build(raw: pd.DataFrame, repo: Path, home: Path, config: Path | None) -> object:
    return build_features(
        raw, repo, home, validation_days=2, test_days=2, warmup_days=2, config=config
    )


def published(redis_password: str) -> dict[str, object]:
    """The registry object's bytes, every Redis key's value and the data link."""
    import boto3
    import redis

    endpoint = os.environ["FEAST_S3_ENDPOINT_URL"]
    s3 = boto3.client("s3", endpoint_url=endpoint)
    registry = s3.get_object(Bucket=BUCKET, Key="feast/registry.db")["Body"].read()
    host, port = os.environ["KAIZEN_REDIS_CONNECTION"].split(",")[0].split(":")
    client = redis.Redis(host=host, port=int(port), password=redis_password)
    keys = {key: client.dump(key) for key in sorted(client.keys("*"))}
    return {
        "registry": registry,
        "redis": keys,
        "link": os.readlink(os.environ["KAIZEN_FEAST_DATA_URI"]),
    }


def test_a_build_with_s3_registry_and_redis_gives_what_the_embedded_one_gives(
    repo_root: Path, tmp_path: Path, elsewhere: Path, redis_url: tuple[str, str]
) -> None:
    repo, raw = repo_root / "feature_repo", history()
    assert not is_applied(tmp_path / "home", repo_path=repo, config=elsewhere)

    result = build(raw, repo, tmp_path / "home", elsewhere)
    embedded = build(raw, repo, tmp_path / "embedded-home", None)

    for split in ("train", "validation", "test"):
        pd.testing.assert_frame_equal(getattr(result, split), getattr(embedded, split))
    assert is_applied(tmp_path / "home", repo_path=repo, config=elsewhere)
    # The sources are a generation beside the link, which names it.
    link = Path(os.environ["KAIZEN_FEAST_DATA_URI"])
    assert link.is_symlink() and (link.parent / os.readlink(link)).is_dir()
    # Nothing of the embedded layout was written under the home.
    assert not (tmp_path / "home" / "feast" / "registry.db").exists()

    store = load_feature_store(repo, tmp_path / "home", config=elsewhere)
    assert "redis" in type(store._get_provider().online_store).__name__.lower()
    local = load_feature_store(repo, tmp_path / "embedded-home")
    rows = [
        {
            "customer_id": customer,
            "merchant_id": merchant,
            "amount": 42.5,
            "event_timestamp": pd.Timestamp("2026-05-09 12:00", tz="UTC"),
        }
        for customer, merchant in (("C1", "M1"), ("C4", "M3"), ("nobody", "M2"))
    ]
    pd.testing.assert_frame_equal(online_features(store, rows), online_features(local, rows))


def test_a_build_that_fails_before_the_publish_changes_nothing_in_s3_or_redis(
    repo_root: Path,
    tmp_path: Path,
    elsewhere: Path,
    redis_url: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kaizen.features import build as module

    repo = repo_root / "feature_repo"
    build(history(), repo, tmp_path / "home", elsewhere)
    before = published(redis_url[1])
    generations = sorted(Path(os.environ["KAIZEN_FEAST_DATA_URI"]).parent.iterdir())

    def retrieval_fails(*args: object, **kwargs: object) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(module, "build_training_frame", retrieval_fails)
    with pytest.raises(OSError, match="No space left"):
        build(history(seed=10, shift_amounts=1000), repo, tmp_path / "home", elsewhere)
    assert published(redis_url[1]) == before
    assert sorted(Path(os.environ["KAIZEN_FEAST_DATA_URI"]).parent.iterdir()) == generations


def test_a_data_uri_in_an_object_store_is_refused_by_name(
    repo_root: Path, tmp_path: Path, elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kaizen.features import FeatureRepoError

    monkeypatch.setenv("KAIZEN_FEAST_DATA_URI", "s3://kaizen/feast/data/current")
    with pytest.raises(FeatureRepoError, match="KAIZEN_FEAST_DATA_URI='s3://kaizen/feast/data"):
        build(history(), repo_root / "feature_repo", tmp_path / "home", elsewhere)
