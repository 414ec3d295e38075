"""Adapter over the private internals of the ``minio`` client that the S3 object store uses.

Written for minio >=7.2,<7.3 (pyproject.toml pins ``minio~=7.2.0``: the internals below may
change in any minor release), checked against 7.2.20.
:func:`check_version` refuses any other version; :class:`~kaizen.platform.storage.S3ObjectStore`
calls it when it is created.

Why internals: write-once needs the conditional write ``If-None-Match: *`` on the request
that makes an object visible, and minio-py 7.2's public ``put_object`` turns every extra
header into user metadata (``x-amz-meta-if-none-match``, which the server ignores), and its
multipart completion takes no extra headers at all. So the store sends those requests
through the client's request layer, which signs them and retries nothing:

- ``Minio._execute`` for PutObject and CompleteMultipartUpload with our own headers (and,
  for the completion, the XML body S3 defines, plus the ``<Error>`` body S3 may send with
  a 200 answer, read with ``S3Error.fromxml``);
- ``Minio._create_multipart_upload``, ``Minio._upload_part`` and
  ``Minio._abort_multipart_upload`` for the rest of a multipart upload, driven part by
  part so each part is hashed as it goes and retried on its own;
- ``minio.helpers.check_bucket_name``, the client's own bucket-name rules, to refuse a bad
  name when the store is created rather than on its first request.

Everything else (``Minio(...)``, ``stat_object``, ``get_object``, ``list_objects``,
``bucket_exists``, ``make_bucket``, ``minio.error``) is minio's public API and is used by
:mod:`kaizen.platform.storage` directly.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape as xml_escape

from packaging.specifiers import SpecifierSet

from kaizen.platform.library_versions import require_version

if TYPE_CHECKING:
    from minio import Minio
    from minio.helpers import DictType

LIBRARY = "minio"
SUPPORTED_VERSIONS = SpecifierSet(">=7.2,<7.3")
_USES = (
    "Minio._execute, Minio._create_multipart_upload, Minio._upload_part, "
    "Minio._abort_multipart_upload, minio.helpers.check_bucket_name"
)


def check_version() -> str:
    """The installed minio version, if this adapter was written for it.

    Raises:
        UnsupportedLibraryVersionError: naming minio, the installed version and the range.
    """
    return require_version(LIBRARY, SUPPORTED_VERSIONS, __name__, _USES)


def validate_bucket_name(bucket: str) -> None:
    """Raise ``ValueError`` if ``bucket`` is not a valid S3 bucket name (minio's rules)."""
    from minio.helpers import check_bucket_name

    check_bucket_name(bucket)


def put_object(
    client: Minio, bucket: str, key: str, data: bytes, headers: Mapping[str, str]
) -> None:
    """PutObject ``data`` at ``key`` with exactly ``headers`` (``If-None-Match`` included).

    Raises:
        S3Error: the server refused it (``PreconditionFailed`` when ``If-None-Match: *``
            meets an existing object).
    """
    # A fresh dict per call: the client adds signing headers to the one it gets.
    client._execute("PUT", bucket, key, body=data, headers=dict(headers), no_body_trace=True)


def create_multipart_upload(
    client: Minio, bucket: str, key: str, headers: Mapping[str, str]
) -> str:
    """Start a multipart upload whose object will carry ``headers``; return its upload id."""
    return str(client._create_multipart_upload(bucket, key, dict(headers)))


def upload_part(
    client: Minio, bucket: str, key: str, data: bytes, upload_id: str, part_number: int
) -> str:
    """Upload part ``part_number`` (from 1) of an upload; return its ETag."""
    return str(client._upload_part(bucket, key, data, None, upload_id, part_number))


def complete_multipart_upload(
    client: Minio,
    bucket: str,
    key: str,
    upload_id: str,
    parts: Sequence[tuple[int, str]],
    headers: Mapping[str, str],
) -> None:
    """Complete an upload from its ``(part number, ETag)`` list, sending ``headers`` too.

    ``headers`` is where ``If-None-Match: *`` goes: minio-py's own completion cannot send
    it; S3 and Minio check it here.

    Raises:
        S3Error: the server refused it, including the error S3 may put in the body of a 200.
    """
    from minio.error import S3Error

    body = (
        "<CompleteMultipartUpload>"
        + "".join(
            f'<Part><PartNumber>{number}</PartNumber><ETag>"{xml_escape(etag)}"</ETag></Part>'
            for number, etag in parts
        )
        + "</CompleteMultipartUpload>"
    ).encode()
    request_headers: DictType = {
        "Content-Type": "application/xml",
        "Content-MD5": base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode(),
        **headers,
    }
    response = client._execute(
        "POST",
        bucket,
        key,
        body=body,
        headers=request_headers,
        query_params={"uploadId": upload_id},
    )
    # S3 may answer 200 and put the error in the body of a completion.
    if b"<Error>" in response.data:
        raise S3Error.fromxml(response)


def abort_multipart_upload(client: Minio, bucket: str, key: str, upload_id: str) -> None:
    """Abort an upload: its parts are dropped and the object never becomes visible."""
    client._abort_multipart_upload(bucket, key, upload_id)
