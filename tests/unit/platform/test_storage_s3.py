"""The S3 backend against moto's S3 server on 127.0.0.1, through the real ``minio`` client.

Interface tests run on both backends (local folder and S3), so the two keep one meaning.
"""

from __future__ import annotations

import http.client
import io
import itertools
import logging
import socket
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from minio import Minio
from moto.server import ThreadedMotoServer
from pydantic import SecretStr

from kaizen.platform.settings import Settings
from kaizen.platform.storage import (
    MIN_PART_SIZE,
    KeyExistsError,
    KeyNotFoundError,
    LocalObjectStore,
    ObjectStore,
    S3ObjectStore,
    StorageError,
    StorageUnavailableError,
    open_store,
    sha256_bytes,
)

ACCESS_KEY = "AKIAKAIZENTESTACCESS7"
SECRET_KEY = "kaizen-test-secret-9f2c41d07e"
REGION = "us-east-1"
# Over MIN_PART_SIZE, so the S3 store (part_size=MIN_PART_SIZE) sends it in 3 parts.
LARGE = bytes(range(256)) * (11 * 4096)
_bucket_numbers = itertools.count(1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()


def _s3_store(endpoint: str, bucket: str | None = None, **options: Any) -> S3ObjectStore:
    options = {"secure": False, "region": REGION, "part_size": MIN_PART_SIZE, **options}
    return S3ObjectStore(
        endpoint,
        bucket or f"kaizen-test-{next(_bucket_numbers)}",
        ACCESS_KEY,
        SECRET_KEY,
        **options,
    )


@pytest.fixture
def s3_store(moto_endpoint: str) -> S3ObjectStore:
    return _s3_store(moto_endpoint, create_bucket=True)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    return _s3_store(request.getfixturevalue("moto_endpoint"), create_bucket=True)


def _boto(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=f"http://{endpoint}",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )


class FailingStream(io.RawIOBase):
    """A source (network file, pipe) that dies after ``fail_after`` bytes."""

    def __init__(self, data: bytes, fail_after: int) -> None:
        self._data = io.BytesIO(data)
        self._fail_after = fail_after

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._data.tell() >= self._fail_after:
            raise OSError("connection to the source reset")
        return self._data.read(min(size, self._fail_after - self._data.tell()))


# --- the interface, on both backends ---------------------------------------------------


def test_round_trip_listing_and_uri(store: ObjectStore) -> None:
    store.put_bytes("models/m/v2/model.keras", b"other")
    store.put_bytes("models/m/v1/model.keras", b"weights")
    store.put_bytes("reports/r.html", b"<html/>")
    assert store.get_bytes("models/m/v1/model.keras") == b"weights"
    assert list(store.list("models/")) == ["models/m/v1/model.keras", "models/m/v2/model.keras"]
    assert list(store.list()) == [
        "models/m/v1/model.keras",
        "models/m/v2/model.keras",
        "reports/r.html",
    ]
    assert store.exists("reports/r.html")
    assert not store.exists("reports/missing.html")
    if isinstance(store, S3ObjectStore):
        assert store.uri("reports/r.html") == f"s3://{store.bucket}/reports/r.html"
    else:
        assert store.uri("reports/r.html").startswith("file://")


def test_second_write_of_a_versioned_key_is_refused_and_first_kept(store: ObjectStore) -> None:
    store.put_bytes("models/m/v1/model.keras", b"good")
    with pytest.raises(
        KeyExistsError, match=r"refusing to overwrite versioned key 'models/m/v1/model\.keras'"
    ):
        store.put_bytes("models/m/v1/model.keras", b"bad")
    assert store.get_bytes("models/m/v1/model.keras") == b"good"
    store.put_bytes("latest.json", b"1", overwrite=True)
    store.put_bytes("latest.json", b"2", overwrite=True)
    assert store.get_bytes("latest.json") == b"2"


def test_missing_key_is_key_not_found_naming_the_key(store: ObjectStore) -> None:
    with pytest.raises(KeyNotFoundError, match="no object at key 'nope/x'"):
        store.get_bytes("nope/x")


def test_large_file_round_trip(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "model.keras"
    source.write_bytes(LARGE)
    store.put_file("models/m/v1/model.keras", source)
    copy = store.get_file("models/m/v1/model.keras", tmp_path / "copy" / "model.keras")
    assert copy.read_bytes() == LARGE
    with pytest.raises(KeyExistsError):
        store.put_file("models/m/v1/model.keras", source)


def test_stream_that_dies_midway_leaves_nothing_readable(store: ObjectStore) -> None:
    seven_mib = 7 * 1024 * 1024  # past the first 5 MiB part on S3
    with pytest.raises(
        StorageError,
        match=rf"reading the data for key 'models/m/v1/model\.keras' failed after {seven_mib} "
        rf"of {len(LARGE)} bytes \(OSError: connection to the source reset\)",
    ):
        store.put_stream(
            "models/m/v1/model.keras",
            FailingStream(LARGE, seven_mib),
            length=len(LARGE),
            sha256=sha256_bytes(LARGE),
        )
    with pytest.raises(KeyNotFoundError):
        store.get_bytes("models/m/v1/model.keras")
    assert list(store.list()) == []
    if isinstance(store, LocalObjectStore):
        assert [path for path in store.root.rglob("*") if path.is_file()] == []


@pytest.mark.parametrize(
    ("stream_data", "declared_sha256", "message"),
    [
        (LARGE[:-10], sha256_bytes(LARGE), "ended after 11534326 of the declared 11534336 bytes"),
        (LARGE + b"!", sha256_bytes(LARGE), "is longer than the declared 11534336 bytes"),
        (LARGE, "0" * 64, f"does not match its declared sha256: expected {'0' * 64}, got"),
    ],
    ids=["short", "long", "other-bytes"],
)
def test_stream_not_matching_its_declaration_is_refused(
    store: ObjectStore, stream_data: bytes, declared_sha256: str, message: str
) -> None:
    with pytest.raises(StorageError, match=message):
        store.put_stream(
            "data/x.parquet",
            io.BytesIO(stream_data),
            length=len(LARGE),
            sha256=declared_sha256,
        )
    assert not store.exists("data/x.parquet")
    assert list(store.list()) == []


# --- S3 specifics ----------------------------------------------------------------------


def test_s3_refusal_names_bucket_and_key(s3_store: S3ObjectStore) -> None:
    s3_store.put_bytes("pipelines/p/v1/pipeline.yaml", b"a")
    with pytest.raises(KeyExistsError) as refused:
        s3_store.put_bytes("pipelines/p/v1/pipeline.yaml", b"b")
    assert f"bucket {s3_store.bucket!r}" in str(refused.value)
    assert "'pipelines/p/v1/pipeline.yaml'" in str(refused.value)
    assert "If-None-Match" in str(refused.value)


def test_s3_multipart_completion_is_conditional(
    s3_store: S3ObjectStore, moto_endpoint: str
) -> None:
    """A writer that sneaks in while our parts are uploading wins; our completion is refused."""
    rival = _s3_store(moto_endpoint, s3_store.bucket)

    class RacedStream(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            if self.tell() >= 2 * MIN_PART_SIZE and not rival.exists("models/m/v1/model.keras"):
                rival.put_bytes("models/m/v1/model.keras", b"rival")
            return super().read(size)

    with pytest.raises(KeyExistsError, match="If-None-Match"):
        s3_store.put_stream(
            "models/m/v1/model.keras",
            RacedStream(LARGE),
            length=len(LARGE),
            sha256=sha256_bytes(LARGE),
        )
    assert s3_store.get_bytes("models/m/v1/model.keras") == b"rival"
    uploads = _boto(moto_endpoint).list_multipart_uploads(Bucket=s3_store.bucket)
    assert uploads.get("Uploads", []) == []  # ours was aborted, not left behind


def test_s3_large_objects_go_up_in_parts(s3_store: S3ObjectStore, moto_endpoint: str) -> None:
    s3_store.put_bytes("big.bin", LARGE)
    head = _boto(moto_endpoint).head_object(Bucket=s3_store.bucket, Key="big.bin")
    assert head["ETag"].strip('"').endswith("-3")  # S3's mark of a 3-part upload
    assert head["Metadata"] == {"sha256": sha256_bytes(LARGE)}


def test_s3_stream_dying_midway_aborts_the_multipart_upload(
    s3_store: S3ObjectStore, moto_endpoint: str
) -> None:
    with pytest.raises(StorageError, match="failed after"):
        s3_store.put_stream(
            "big.bin",
            FailingStream(LARGE, 2 * MIN_PART_SIZE + 1),
            length=len(LARGE),
            sha256=sha256_bytes(LARGE),
        )
    uploads = _boto(moto_endpoint).list_multipart_uploads(Bucket=s3_store.bucket)
    assert uploads.get("Uploads", []) == []


_KILLED_WRITER = textwrap.dedent(
    """
    import io, os, sys
    from kaizen.platform.storage import MIN_PART_SIZE, S3ObjectStore, sha256_bytes

    endpoint, bucket = sys.argv[1], sys.argv[2]
    data = bytes(range(256)) * (11 * 4096)

    class DiesMidway(io.BytesIO):
        def read(self, size=-1):
            if self.tell() >= MIN_PART_SIZE:  # part 1 is on the server by now
                os._exit(17)  # the process is killed: no abort, no cleanup
            return super().read(size)

    store = S3ObjectStore(endpoint, bucket, sys.argv[3], sys.argv[4], secure=False,
                          region="us-east-1", part_size=MIN_PART_SIZE)
    store.put_stream("models/m/v1/model.keras", DiesMidway(data), length=len(data),
                     sha256=sha256_bytes(data))
    """
)


def test_s3_writer_killed_midway_leaves_nothing_readable(
    s3_store: S3ObjectStore, moto_endpoint: str
) -> None:
    writer = subprocess.run(
        [
            sys.executable,
            "-c",
            _KILLED_WRITER,
            moto_endpoint,
            s3_store.bucket,
            ACCESS_KEY,
            SECRET_KEY,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert writer.returncode == 17, writer.stderr
    # The interrupted upload really is on the server, with its first part...
    client = _boto(moto_endpoint)
    (upload,) = client.list_multipart_uploads(Bucket=s3_store.bucket)["Uploads"]
    parts = client.list_parts(
        Bucket=s3_store.bucket, Key="models/m/v1/model.keras", UploadId=upload["UploadId"]
    )
    assert [part["PartNumber"] for part in parts["Parts"]] == [1]
    # ...and still nothing is readable or listed.
    with pytest.raises(KeyNotFoundError):
        s3_store.get_bytes("models/m/v1/model.keras")
    assert list(s3_store.list()) == []
    assert not s3_store.exists("models/m/v1/model.keras")


def test_s3_tampered_object_is_refused_on_read(
    s3_store: S3ObjectStore, moto_endpoint: str, tmp_path: Path
) -> None:
    s3_store.put_bytes("models/m/v1/model.keras", b"trained weights")
    recorded = sha256_bytes(b"trained weights")
    # Someone rewrites the bytes outside Kaizen and even keeps the old metadata.
    _boto(moto_endpoint).put_object(
        Bucket=s3_store.bucket,
        Key="models/m/v1/model.keras",
        Body=b"evil weights",
        Metadata={"sha256": recorded},
    )
    expected_message = (
        rf"checksum mismatch for key 'models/m/v1/model\.keras' in bucket '{s3_store.bucket}'.*"
        rf"expected sha256 {recorded} .*got {sha256_bytes(b'evil weights')}"
    )
    with pytest.raises(StorageError, match=expected_message):
        s3_store.get_bytes("models/m/v1/model.keras")
    target = tmp_path / "model.keras"
    with pytest.raises(StorageError, match=expected_message):
        s3_store.get_file("models/m/v1/model.keras", target)
    assert list(tmp_path.iterdir()) == []  # no half-checked file left for a loader


def test_s3_object_without_checksum_metadata_is_refused(
    s3_store: S3ObjectStore, moto_endpoint: str
) -> None:
    raw = Minio(moto_endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY, secure=False)
    raw.put_object(s3_store.bucket, "foreign.bin", io.BytesIO(b"data"), 4)
    with pytest.raises(StorageError, match=r"'foreign\.bin' .* has no sha256 metadata"):
        s3_store.get_bytes("foreign.bin")
    assert s3_store.exists("foreign.bin")


def test_s3_missing_bucket_is_a_clear_error(moto_endpoint: str) -> None:
    store = _s3_store(moto_endpoint, "kaizen-no-such-bucket")
    with pytest.raises(StorageError, match="bucket 'kaizen-no-such-bucket' does not exist at"):
        store.put_bytes("a", b"1")


def test_s3_tls_is_on_by_default(moto_endpoint: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = S3ObjectStore(moto_endpoint, "kaizen-tls", ACCESS_KEY, SECRET_KEY, region=REGION)
    assert store.secure and store.endpoint_url == f"https://{moto_endpoint}"
    assert store.attempts > 1  # retries are on: the TLS failure below must not use them
    # moto serves plain HTTP: the TLS handshake fails, and is not retried.
    with pytest.raises(StorageError, match=r"TLS connection to https://.* secure=False"):
        store.put_bytes("a", b"1")
    assert [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()] == []


def test_s3_unreachable_store_fails_after_bounded_retries_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    endpoint = f"127.0.0.1:{_free_port()}"  # nothing listens there
    store = _s3_store(endpoint, "kaizen", attempts=3, backoff_s=0.05)
    errors: list[StorageUnavailableError] = []
    started = time.monotonic()
    for operation in (
        lambda: store.put_bytes("models/m/v1/model.keras", b"x"),
        lambda: store.get_bytes("models/m/v1/model.keras"),
        lambda: list(store.list()),
    ):
        with pytest.raises(StorageUnavailableError) as failed:
            operation()
        errors.append(failed.value)
    # The backoff really waits (0.05 s, then 0.1 s, per operation): a lower bound holds on any
    # machine; that the retries are bounded is the attempt count below, not a clock.
    assert time.monotonic() - started >= 3 * (0.05 + 0.1)
    message = str(errors[0])
    assert f"object store at http://{endpoint} is unavailable" in message
    assert "write 'models/m/v1/model.keras' failed after 3 attempts" in message
    assert "Connection refused" in message
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert [m.rsplit("retrying in ", 1)[1] for m in retries] == ["0.05s", "0.10s"] * 3
    shown = [repr(store), caplog.text] + [
        "".join(traceback.format_exception(error)) for error in errors
    ]
    for text in shown:
        assert ACCESS_KEY not in text and SECRET_KEY not in text


def test_s3_retries_ride_out_a_server_that_comes_up_late(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    starter = threading.Timer(0.3, server.start)
    starter.start()
    try:
        store = _s3_store(f"127.0.0.1:{port}", attempts=6, backoff_s=0.1, create_bucket=True)
        store.put_bytes("a/b", b"made it")
        assert store.get_bytes("a/b") == b"made it"
    finally:
        starter.join()
        server.stop()
    assert any("retrying in" in record.getMessage() for record in caplog.records)


class _LossyProxy:
    """Forwards HTTP to moto, but swallows the answer to the first request ``drop`` matches.

    That is a write that reached the server whose answer was lost on the way back: the
    client sees a dropped connection and retries a request that already took effect.
    """

    def __init__(self, upstream: str, drop: Callable[[str, str], bool]) -> None:
        self.dropped: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                connection = http.client.HTTPConnection(upstream, timeout=10)
                connection.request(self.command, self.path, body=body, headers=dict(self.headers))
                answer = connection.getresponse()
                payload = answer.read()
                connection.close()
                if not proxy.dropped and drop(self.command, self.path):
                    proxy.dropped.append(f"{self.command} {self.path}")
                    self.close_connection = True
                    return
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.mark.parametrize(
    ("data", "drop"),
    [
        (b"small", lambda method, path: method == "PUT" and "models/" in path),
        (LARGE, lambda method, path: method == "POST" and "uploadId=" in path),
    ],
    ids=["put", "multipart-complete"],
)
def test_s3_write_whose_answer_was_lost_is_not_reported_as_a_conflict(
    s3_store: S3ObjectStore,
    moto_endpoint: str,
    data: bytes,
    drop: Callable[[str, str], bool],
) -> None:
    proxy = _LossyProxy(moto_endpoint, drop)
    try:
        store = _s3_store(proxy.endpoint, s3_store.bucket, attempts=3, backoff_s=0.01)
        store.put_bytes("models/m/v1/model.keras", data)
    finally:
        proxy.close()
    assert len(proxy.dropped) == 1
    assert s3_store.get_bytes("models/m/v1/model.keras") == data
    # A real second writer is still refused.
    with pytest.raises(KeyExistsError):
        s3_store.put_bytes("models/m/v1/model.keras", b"another")


def test_open_store_builds_the_s3_store_from_settings(moto_endpoint: str) -> None:
    bucket = _s3_store(moto_endpoint, create_bucket=True).bucket
    settings = Settings(
        storage_backend="s3",
        s3_endpoint=moto_endpoint,
        s3_bucket=bucket,
        s3_access_key=SecretStr(ACCESS_KEY),
        s3_secret_key=SecretStr(SECRET_KEY),
        s3_secure=False,
        s3_region=REGION,
    )
    store = open_store(settings)
    assert isinstance(store, S3ObjectStore)
    assert store.put_bytes("x/y", b"1") == f"s3://{bucket}/x/y"
    assert store.get_bytes("x/y") == b"1"
    assert (
        repr(store) == f"S3ObjectStore(endpoint={moto_endpoint!r}, bucket={bucket!r}, secure=False)"
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"endpoint": "https://minio:9000"}, "host:port without a scheme"),
        ({"attempts": 0}, "attempts must be >= 1"),
        ({"part_size": 1024}, "part_size must be >= 5242880"),
    ],
)
def test_s3_store_refuses_bad_configuration(arguments: dict[str, Any], message: str) -> None:
    options: dict[str, Any] = {"endpoint": "minio:9000", **arguments}
    endpoint = options.pop("endpoint")
    with pytest.raises(ValueError, match=message):
        S3ObjectStore(endpoint, "kaizen", ACCESS_KEY, SECRET_KEY, **options)
