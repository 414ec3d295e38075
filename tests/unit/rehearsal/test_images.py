"""Pushing an image and pinning it by digest."""

from __future__ import annotations

from pathlib import Path

import pytest

from kaizen.rehearsal.images import (
    ImagePushError,
    PushedImage,
    parse_digest,
    pinned_reference,
    push_command,
    split_reference,
)

DIGEST = "sha256:" + "0a" * 32


def test_the_push_goes_over_plain_http_and_writes_the_digest(tmp_path: Path) -> None:
    assert push_command(
        "/usr/bin/podman",
        "localhost/kaizen-component:dev",
        "127.0.0.1:5123/kaizen-component:rehearsal",
        tmp_path / "d",
    ) == [
        "/usr/bin/podman",
        "push",
        "--tls-verify=false",
        "--compression-format=zstd",
        "--digestfile",
        str(tmp_path / "d"),
        "localhost/kaizen-component:dev",
        "127.0.0.1:5123/kaizen-component:rehearsal",
    ]


def test_the_digest_file_is_read_and_pinned() -> None:
    assert parse_digest(f"{DIGEST}\n") == DIGEST
    reference = pinned_reference("127.0.0.1:5123", "kaizen-serving", DIGEST)
    assert reference == f"127.0.0.1:5123/kaizen-serving@{DIGEST}"
    assert split_reference(reference) == ("127.0.0.1:5123/kaizen-serving", DIGEST)
    image = PushedImage("localhost/kaizen-serving:dev", reference, 1.0)
    assert (image.repository, image.digest) == ("127.0.0.1:5123/kaizen-serving", DIGEST)


@pytest.mark.parametrize("text", ["", "sha256:abc", "md5:" + "0" * 64, "latest"])
def test_anything_but_a_sha256_digest_is_refused(text: str) -> None:
    with pytest.raises(ImagePushError, match="no sha256 digest"):
        parse_digest(text)


@pytest.mark.parametrize(
    "reference",
    ["127.0.0.1:5123/kaizen-serving:dev", f"@{DIGEST}", "127.0.0.1:5123/kaizen-serving@sha256:1"],
)
def test_a_reference_not_pinned_by_digest_is_refused(reference: str) -> None:
    with pytest.raises(ImagePushError, match="not a reference pinned by digest"):
        split_reference(reference)
