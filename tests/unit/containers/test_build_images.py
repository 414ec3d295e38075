"""docker/build_images.py: the commands it runs for given settings, and its budget verdict."""

from __future__ import annotations

import subprocess
import tomllib
from types import ModuleType
from typing import Any

import pytest

from tests.support.containers import DOCKER_DIR


def _image(build_images: ModuleType, name: str) -> Any:
    return next(image for image in build_images.IMAGES if image.name == name)


def test_podman_builds_in_docker_format_with_the_base_and_commit(
    build_images: ModuleType,
) -> None:
    serving = _image(build_images, "serving")

    command = build_images.build_command(
        "podman",
        serving,
        tag="registry.example/kaizen-serving:1",
        base_image="python:3.11-slim-bookworm@sha256:" + "0" * 64,
        git_commit="abc123",
        mounts=["-v", "/a:/a:ro"],
        extra_flags=["--no-cache"],
    )

    # Without --format docker podman writes OCI images, which drop the HEALTHCHECK.
    assert command[:4] == ["podman", "build", "--format", "docker"]
    assert command[command.index("--file") + 1] == "docker/serving.Dockerfile"
    assert command[command.index("--tag") + 1] == "registry.example/kaizen-serving:1"
    args = [command[i + 1] for i, word in enumerate(command) if word == "--build-arg"]
    assert args == [
        "BASE_IMAGE=python:3.11-slim-bookworm@sha256:" + "0" * 64,
        "KAIZEN_GIT_COMMIT=abc123",
    ]
    assert command[-4:] == ["-v", "/a:/a:ro", "--no-cache", "."]


def test_docker_gets_neither_the_format_flag_nor_default_mounts(
    build_images: ModuleType,
) -> None:
    component = _image(build_images, "component")

    command = build_images.build_command(
        "docker", component, tag="t", base_image="b", git_commit="c"
    )

    assert "--format" not in command
    assert build_images.build_mounts("docker", None, exists=lambda path: True) == []


def test_podman_mounts_the_hosts_trust_files_read_only_unless_told_otherwise(
    build_images: ModuleType,
) -> None:
    present = {"/etc/ssl/certs/ca-certificates.crt"}

    default = build_images.build_mounts("podman", None, exists=present.__contains__)

    assert default == [
        "-v",
        "/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro",
    ]
    assert build_images.build_mounts("podman", "", exists=present.__contains__) == []
    assert build_images.build_mounts(
        "podman", "-v '/my certs/ca.pem:/etc/ssl/certs/ca-certificates.crt:ro'"
    ) == ["-v", "/my certs/ca.pem:/etc/ssl/certs/ca-certificates.crt:ro"]


def test_docker_is_used_only_when_its_daemon_answers(build_images: ModuleType) -> None:
    assert build_images.choose_engine("auto", lambda: True) == "docker"
    assert build_images.choose_engine("auto", lambda: False) == "podman"
    assert build_images.choose_engine("podman", lambda: True) == "podman"
    with pytest.raises(ValueError, match="nerdctl"):
        build_images.choose_engine("nerdctl", lambda: True)


def test_a_registry_base_without_a_digest_is_warned_about(build_images: ModuleType) -> None:
    assert build_images.base_pin_warning(build_images.LOCAL_BASE_IMAGE) is None
    assert build_images.base_pin_warning("python:3.11-slim@sha256:" + "1" * 64) is None
    warning = build_images.base_pin_warning("python:3.11-slim-bookworm")
    assert warning is not None and "digest" in warning


def test_the_local_base_has_security_updates_and_a_path(build_images: ModuleType) -> None:
    bootstrap, load = build_images.base_image_commands("podman", "/tmp/base.tar")

    assert bootstrap[0] == "mmdebstrap" and "--variant=minbase" in bootstrap
    assert "--include=python3,python3-venv,ca-certificates" in bootstrap
    assert "deb http://deb.debian.org/debian-security bookworm-security main" in bootstrap
    assert load[:2] == ["podman", "import"]
    assert load[-2:] == ["/tmp/base.tar", build_images.LOCAL_BASE_IMAGE]
    assert any(change.startswith("ENV PATH=") for change in load)


def test_an_image_over_its_budget_is_named(build_images: ModuleType) -> None:
    lines, over = build_images.budget_report(
        {"small:dev": (999_000_000, 1000, 61.0), "big:dev": (1_000_000_001, 1000, 5.0)}
    )

    assert over == ["big:dev"]
    assert "999 MB" in lines[1] and "1m01s" in lines[1] and "OVER" not in lines[1]
    assert "OVER BUDGET" in lines[2]


def test_the_commit_is_marked_dirty_when_tracked_files_changed(build_images: ModuleType) -> None:
    def fake_git(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        output = "f" * 40 if "rev-parse" in command else " M Makefile"
        return subprocess.CompletedProcess(command, 0, stdout=output + "\n")

    def no_git(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError("git")

    assert build_images.git_commit(fake_git) == "f" * 40 + "+dirty"
    assert build_images.git_commit(no_git) == "unknown"


def test_podman_is_configured_for_runc_within_the_hosts_file_limit() -> None:
    config = tomllib.loads((DOCKER_DIR / "containers.conf").read_text())

    assert config["engine"]["runtime"] == "runc"
    assert "nofile=20000:20000" in config["containers"]["default_ulimits"]
