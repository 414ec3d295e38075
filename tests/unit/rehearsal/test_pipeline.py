"""The pipeline the rehearsal runs: the compiled YAML pinned to the pushed image."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kaizen.pipeline.compiler import TRAINING_PIPELINE_YAML
from kaizen.rehearsal.pipeline import (
    compile_pinned,
    docker_host,
    task_environment_variables,
    task_images,
)
from kaizen.rehearsal.serving import serving_run_command

REFERENCE = "127.0.0.1:5123/kaizen-component@sha256:" + "0b" * 32


def test_every_task_runs_the_pushed_image(tmp_path: Path) -> None:
    images = task_images(compile_pinned(tmp_path / "pipeline.yaml", REFERENCE))
    # the tasks of every round, inside conditions and the exit handler, as kfp.local names them
    for task in ("ingest-data", "build-features", "tune-model", "train-model-2", "notify-run"):
        assert images[task] == REFERENCE, images
    assert set(images.values()) == {REFERENCE}


def test_no_task_sets_variables_of_its_own() -> None:
    # kfp 2.17's DockerRunner lays the rehearsal's environment over a task's own variables;
    # a task that starts setting some must be checked against the rehearsal's.
    assert task_environment_variables(TRAINING_PIPELINE_YAML) == {}


def test_docker_host_is_set_only_inside_the_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///before.sock")
    with docker_host("unix:///w/podman.sock"):
        assert os.environ["DOCKER_HOST"] == "unix:///w/podman.sock"
    assert os.environ["DOCKER_HOST"] == "unix:///before.sock"
    monkeypatch.delenv("DOCKER_HOST")
    with docker_host("unix:///w/podman.sock"):
        pass
    assert "DOCKER_HOST" not in os.environ


def test_the_serving_container_gets_variables_by_name_only(tmp_path: Path) -> None:
    command = serving_run_command(
        "/usr/bin/podman",
        "127.0.0.1:5123/kaizen-serving@sha256:" + "0c" * 32,
        name="serving-1",
        port=8123,
        variables=["KAIZEN_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"],
        shared_dir=tmp_path,
    )
    assert command[command.index("-e") : command.index("-e") + 2] == ["-e", "AWS_SECRET_ACCESS_KEY"]
    assert not [part for part in command if "=" in part]  # no NAME=value on the command line
    assert command[command.index("--network") :][:2] == ["--network", "host"]
    assert command[-7:] == [
        "kaizen", "serve", "--host", "127.0.0.1", "--port", "8123", "--no-supervise",
    ]  # fmt: skip
