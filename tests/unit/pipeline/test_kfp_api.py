"""The KFP client's own checks: hosts, token files, KFP's error bodies, links.

What it sends and how it reads KFP's answers is pinned against the stand-in KFP server in
tests/contract/test_kfp_api_contract.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kaizen.pipeline.kfp_api import (
    KfpClient,
    KfpConfigError,
    _server_message,
    normalize_host,
    read_token,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8888", "http://127.0.0.1:8888"),
        ("https://kubeflow.example.com/pipeline/", "https://kubeflow.example.com/pipeline"),
        ("  http://ml-pipeline.kubeflow:8888  ", "http://ml-pipeline.kubeflow:8888"),
    ],
)
def test_hosts_are_normalised(given: str, expected: str) -> None:
    assert normalize_host(given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ml-pipeline:8888", "must be an http(s) URL"),
        ("ftp://host", "must be an http(s) URL"),
        ("http://host:port", "is not a URL"),
        ("https://h/p?token=abc", "must not have a query"),
    ],
)
def test_bad_hosts_are_refused(given: str, expected: str) -> None:
    with pytest.raises(KfpConfigError, match=re.escape(expected)):
        normalize_host(given)


def test_a_host_with_credentials_is_refused_without_repeating_them() -> None:
    with pytest.raises(KfpConfigError) as caught:
        normalize_host("https://admin:hunter2@kubeflow.example.com")
    assert "hunter2" not in str(caught.value)
    assert "--token-file" in str(caught.value)


def test_the_token_file_is_read_stripped(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("  eyJhbGciOi.abc.def\n")
    assert read_token(path) == "eyJhbGciOi.abc.def"


def test_missing_or_empty_token_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(KfpConfigError, match=rf"cannot read the KFP token file {tmp_path}/none"):
        read_token(tmp_path / "none")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(KfpConfigError, match="is empty"):
        read_token(empty)


def test_kfp_error_bodies_yield_kfps_own_words() -> None:
    gateway = {
        "code": 5,
        "message": "Failed to get pipeline: ResourceNotFoundError: Pipeline p not found",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.Status",
                "code": 5,
                "message": "Pipeline p not found",
            }
        ],
    }
    assert _server_message(json.dumps(gateway).encode()) == "Pipeline p not found"
    assert (
        _server_message(b'{"code": 3, "message": "proto: unknown field"}') == "proto: unknown field"
    )
    upload = {"error_message": "Failed to create a pipeline version", "error_details": "x"}
    assert _server_message(json.dumps(upload).encode()) == "Failed to create a pipeline version"
    assert _server_message(b"upstream connect error\n") == "upstream connect error"


def test_links_use_the_ui_url_and_the_client_shows_no_token(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("very-secret-token")
    client = KfpClient("http://127.0.0.1:8888", token_file=token, ui_url="http://127.0.0.1:8080/")
    assert client.run_url("r1") == "http://127.0.0.1:8080/#/runs/details/r1"
    assert client.recurring_run_url("s1") == "http://127.0.0.1:8080/#/recurringrun/details/s1"
    assert "very-secret-token" not in repr(client)
    assert KfpClient("https://kf.example.com/pipeline").run_url("r") == (
        "https://kf.example.com/pipeline/#/runs/details/r"
    )


def test_a_missing_ca_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(KfpConfigError, match=f"KFP CA file {tmp_path}/ca.pem does not exist"):
        KfpClient("https://kf.example.com", ca_file=tmp_path / "ca.pem")
