"""The minio adapter's calls still work against a real minio client (its version check is in
tests/unit/platform/test_library_versions.py).

The calls run against a real minio client talking to moto's S3 server (the fixtures of
test_storage_s3.py), so a minio release that renamed or reshaped the private methods the
adapter uses fails here, by name, rather than in a write-once check on a cluster.
"""

from __future__ import annotations

import itertools
from typing import Any

import boto3
import pytest
from minio import Minio
from minio.error import S3Error

from kaizen.platform import library_versions, minio_adapter
from kaizen.platform.library_versions import UnsupportedLibraryVersionError
from kaizen.platform.storage import MIN_PART_SIZE
from tests.unit.platform import test_storage_s3 as s3_tests

moto_endpoint = s3_tests.moto_endpoint  # the module-scoped moto S3 server fixture
_buckets = itertools.count(1)


def test_the_s3_store_checks_the_minio_version_when_it_is_created(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kaizen.platform.storage import S3ObjectStore

    monkeypatch.setattr(library_versions, "installed_version", lambda library: "8.0.0")
    with pytest.raises(UnsupportedLibraryVersionError, match=r"minio 8\.0\.0"):
        S3ObjectStore("127.0.0.1:9", "bucket", "access", "secret", secure=False)


def test_bucket_names_are_checked_by_minios_rules() -> None:
    minio_adapter.validate_bucket_name("kaizen-artifacts")
    for bad in ("ab", "192.168.1.1", "kaizen..artifacts"):
        with pytest.raises(ValueError, match="bucket name"):
            minio_adapter.validate_bucket_name(bad)


@pytest.fixture
def bucket(moto_endpoint: str) -> tuple[Minio, str, Any]:
    client = Minio(
        moto_endpoint,
        access_key=s3_tests.ACCESS_KEY,
        secret_key=s3_tests.SECRET_KEY,
        secure=False,
        region=s3_tests.REGION,
    )
    name = f"adapter-{next(_buckets)}"
    client.make_bucket(name)
    boto = boto3.client(
        "s3",
        endpoint_url=f"http://{moto_endpoint}",
        aws_access_key_id=s3_tests.ACCESS_KEY,
        aws_secret_access_key=s3_tests.SECRET_KEY,
        region_name=s3_tests.REGION,
    )
    return client, name, boto


def test_put_object_sends_our_headers_as_headers(bucket: tuple[Minio, str, Any]) -> None:
    client, name, boto = bucket
    headers = {"Content-Type": "application/octet-stream", "x-amz-meta-sha256": "abc"}
    conditional = {**headers, "If-None-Match": "*"}

    minio_adapter.put_object(client, name, "a/b", b"first", conditional)

    assert conditional == {**headers, "If-None-Match": "*"}  # the caller's dict is untouched
    head = boto.head_object(Bucket=name, Key="a/b")
    # If-None-Match reached the server as a condition, not as user metadata.
    assert head["Metadata"] == {"sha256": "abc"}
    with pytest.raises(S3Error) as refused:
        minio_adapter.put_object(client, name, "a/b", b"second", conditional)
    assert refused.value.code == "PreconditionFailed"
    minio_adapter.put_object(client, name, "a/b", b"second", headers)  # unconditional
    assert boto.get_object(Bucket=name, Key="a/b")["Body"].read() == b"second"


def _upload(client: Minio, name: str, key: str, data: bytes) -> tuple[str, list[tuple[int, str]]]:
    upload_id = minio_adapter.create_multipart_upload(
        client, name, key, {"Content-Type": "application/octet-stream", "x-amz-meta-sha256": "d"}
    )
    parts = [
        (number, minio_adapter.upload_part(client, name, key, chunk, upload_id, number))
        for number, chunk in enumerate(
            (data[i : i + MIN_PART_SIZE] for i in range(0, len(data), MIN_PART_SIZE)), 1
        )
    ]
    return upload_id, parts


def test_a_multipart_upload_completes_conditionally(bucket: tuple[Minio, str, Any]) -> None:
    client, name, boto = bucket
    data = bytes(range(256)) * (MIN_PART_SIZE // 256 + 100)  # two parts
    upload_id, parts = _upload(client, name, "big", data)
    assert [number for number, _ in parts] == [1, 2]

    minio_adapter.complete_multipart_upload(
        client, name, "big", upload_id, parts, {"If-None-Match": "*"}
    )

    head = boto.head_object(Bucket=name, Key="big")
    assert head["ETag"].strip('"').endswith("-2")
    assert head["Metadata"] == {"sha256": "d"}
    assert boto.get_object(Bucket=name, Key="big")["Body"].read() == data
    second_id, second_parts = _upload(client, name, "big", data)
    with pytest.raises(S3Error) as refused:
        minio_adapter.complete_multipart_upload(
            client, name, "big", second_id, second_parts, {"If-None-Match": "*"}
        )
    assert refused.value.code == "PreconditionFailed"
    minio_adapter.abort_multipart_upload(client, name, "big", second_id)


def test_an_aborted_upload_leaves_nothing(bucket: tuple[Minio, str, Any]) -> None:
    client, name, boto = bucket
    upload_id, _ = _upload(client, name, "gone", b"x" * 10)

    minio_adapter.abort_multipart_upload(client, name, "gone", upload_id)

    assert boto.list_multipart_uploads(Bucket=name).get("Uploads", []) == []
    assert boto.list_objects_v2(Bucket=name).get("KeyCount") == 0
