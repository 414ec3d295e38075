"""Run the compiled pipeline YAML with every task in a container of its image.

The YAML is the one ``kaizen compile --image-digest ... --image-repository ...`` writes for a
release, pinned to the component image pushed to the rehearsal's registry. kfp.local's
``DockerRunner`` runs it through podman's Docker API (``DOCKER_HOST``), on the host network
(so the tasks reach the services on 127.0.0.1), with the shared folder mounted, and
:func:`kaizen.pipeline.runner.run_pipeline` reports progress and reads the run exactly as for
``kaizen run``.

kfp 2.17's ``DockerRunner`` merges the runner's ``environment`` over the variables a task
sets itself (``env:`` in the YAML; ours sets none, which :func:`task_environment_variables`
lets the rehearsal check), so every task gets the whole rehearsal environment.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from kaizen.pipeline.compiler import compile_pipeline
from kaizen.pipeline.runner import RunResult, TaskEvent, run_pipeline
from kaizen.platform.settings import Settings
from kaizen.rehearsal.environment import SHARED_MOUNT
from kaizen.rehearsal.images import split_reference

# The images run as this user (docker/*.Dockerfile: USER 10001:10001).
CONTAINER_UID = 10001
CONTAINER_GID = 10001


def compile_pinned(output: Path, component_reference: str) -> Path:
    """Compile the training pipeline with every task's image ``component_reference``."""
    repository, digest = split_reference(component_reference)
    return compile_pipeline(output, image_digest=digest, image_repository=repository)


def _spec(pipeline_yaml: Path) -> dict[str, Any]:
    return dict(next(yaml.safe_load_all(pipeline_yaml.read_text())))


def task_images(pipeline_yaml: Path) -> dict[str, str]:
    """Each task's container image (task names as kfp.local reports them)."""
    spec = _spec(pipeline_yaml)
    components = spec.get("components", {})
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    dags = [spec.get("root", {}).get("dag", {})]
    dags += [component.get("dag", {}) for component in components.values()]
    images = {}
    for dag in dags:
        for task, task_spec in dag.get("tasks", {}).items():
            component = components.get(task_spec.get("componentRef", {}).get("name", ""), {})
            executor = executors.get(component.get("executorLabel", ""), {})
            image = executor.get("container", {}).get("image")
            if image:
                images[task] = image
    return images


def task_environment_variables(pipeline_yaml: Path) -> dict[str, list[str]]:
    """The variables each executor sets itself (``container.env``), by executor."""
    executors = _spec(pipeline_yaml).get("deploymentSpec", {}).get("executors", {})
    found = {}
    for label, executor in executors.items():
        env = executor.get("container", {}).get("env") or []
        if env:
            found[label] = [item.get("name", "") for item in env]
    return found


def make_writable_by_containers(*paths: Path) -> None:
    """Create ``paths`` owned by the images' user, so the tasks can write there.

    Raises:
        PermissionError: not root, and the folders belong to someone else.
    """
    for path in paths:
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(path, CONTAINER_UID, CONTAINER_GID)
        path.chmod(0o775)


@contextlib.contextmanager
def docker_host(address: str) -> Iterator[None]:
    """``DOCKER_HOST`` set to ``address`` inside the block (``docker.from_env()`` reads it)."""
    before = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = address
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = before


def run_in_containers(
    pipeline_yaml: Path,
    *,
    settings: Settings,
    run_id: str,
    environment: Mapping[str, str],
    docker_host_address: str,
    shared_dir: Path,
    arguments: Mapping[str, Any] | None = None,
    on_event: Callable[[TaskEvent], None] = lambda event: None,
) -> RunResult:
    """Run ``pipeline_yaml`` with kfp.local's ``DockerRunner`` through podman's Docker API.

    Args:
        pipeline_yaml: the compiled pipeline, its images pinned (:func:`compile_pinned`).
        settings: the host side: the pipeline root and the run log go under its home.
        run_id: the run's id (the tasks' pipeline job id).
        environment: every task's environment (:func:`~kaizen.rehearsal.environment.
            container_environment`).
        docker_host_address: ``unix://<podman socket>``.
        shared_dir: mounted read-write at ``/var/lib/kaizen-shared`` in every task.
        arguments: pipeline parameters; the defaults (relative paths) resolve in the
            image's working directory, ``/app``.
        on_event: called when a task starts and ends.
    """
    from docker.types import Mount
    from kfp import local

    # The tasks (uid 10001) write their outputs under the pipeline root, mounted at the
    # same path, and their shared state in the shared folder.
    make_writable_by_containers(settings.pipeline_root / run_id, shared_dir)
    runner = local.DockerRunner(
        network_mode="host",
        environment=dict(environment),
        mounts=[Mount(target=SHARED_MOUNT, source=str(shared_dir), type="bind")],
    )
    with docker_host(docker_host_address):
        return run_pipeline(
            pipeline_yaml,
            dict(arguments or {}),
            settings,
            on_event=on_event,
            run_id=run_id,
            runner=runner,
        )
