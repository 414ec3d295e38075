"""Adapter over what the pipeline runner reads of ``kfp.local`` beyond its public API.

Written for kfp >=2.17,<2.18 (pyproject.toml pins ``kfp~=2.17.0``), checked against
2.17.3. :func:`check_version` refuses any other version;
:func:`kaizen.pipeline.runner.run_pipeline` calls it before a run.

``kfp.local`` reports progress only as log text, and its outputs only as files, so the
runner depends on formats it does not document:

- **Where the log goes.** Each run sets up a logging handler on the ``sys.stdout`` of that
  moment and prints the task subprocesses' output there; :func:`capture_output`
  redirects both streams while the pipeline runs.
- **Log lines** (``kfp/local/task_dispatcher.py`` and ``pipeline_orchestrator.py``), with
  the names and statuses coloured by ANSI escapes: ``Executing task '<task>'``,
  ``Task '<task>' finished with status SUCCESS|FAILURE`` and
  ``Pipeline '<name>' finished with status SUCCESS|FAILURE[. Inner task failed: ...]``;
  :func:`parse_log_line` reads them.
- **Task output**, printed between those lines indented by four spaces
  (``logging_utils.indented_print``); :func:`task_error` finds the exception a failed
  task raised in it.
- **The output folders**: ``<pipeline_root>/<pipeline>-<timestamp>/<task>/<output>``, the
  executor output in ``executor_output.json`` (``executor_input_utils``);
  :func:`run_folder` and :func:`task_folder` find them.
- **The pipeline job id.** ``dsl.PIPELINE_JOB_ID_PLACEHOLDER`` resolves to an id kfp.local
  draws with ``placeholder_utils.make_random_id()`` (8 random digits) once per run, before any
  task runs, and passes to every task; per-task ids are drawn after it.
  :func:`pipeline_job_id` makes that first draw return the runner's own run id, so a run has
  one id everywhere (summary, report, log, MLflow, ``kaizen status``).
- **A container's exit status** (``DockerRunner``, ``docker_task_handler.run_docker_container``).
  kfp.local starts each task's container with ``auto_remove=True`` and, when the container is
  gone by the time it asks for the exit status (``docker.errors.NotFound``), counts the task as
  succeeded. Podman removes an exited container at once, so a task that crashes is reported
  SUCCESS without outputs, and the run fails later on a missing output.
  :func:`docker_exit_status_kept` runs the containers without auto-removal, reads their status
  and removes them itself.
"""

from __future__ import annotations

import contextlib
import io
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from packaging.specifiers import SpecifierSet

from kaizen.platform.library_versions import require_version

LIBRARY = "kfp"
SUPPORTED_VERSIONS = SpecifierSet(">=2.17,<2.18")
_USES = (
    "kfp.local's log lines (task started/finished, pipeline finished), its indentation of "
    "task output, and its output folder layout"
)
# The file in each task's folder holding the task's executor output.
EXECUTOR_OUTPUT_FILE = "executor_output.json"
TASK_STARTED = "task_started"
TASK_FINISHED = "task_finished"
PIPELINE_FINISHED = "pipeline_finished"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STARTED = re.compile(r"Executing task '([^']+)'")
_FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")
_PIPELINE_DONE = re.compile(r"Pipeline '([^']+)' finished with status (\w+)")
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")


def check_version() -> str:
    """The installed kfp version, if this adapter was written for it.

    Raises:
        UnsupportedLibraryVersionError: naming kfp, the installed version and the range.
    """
    return require_version(LIBRARY, SUPPORTED_VERSIONS, __name__, _USES)


@dataclass(frozen=True)
class LogEvent:
    """A progress line of kfp.local: a task started or finished, or the pipeline finished.

    Attributes:
        kind: :data:`TASK_STARTED`, :data:`TASK_FINISHED` or :data:`PIPELINE_FINISHED`.
        name: The task's name, or the pipeline's.
        status: ``SUCCESS`` or ``FAILURE`` once finished; None for a start.
    """

    kind: str
    name: str
    status: str | None = None


@contextlib.contextmanager
def capture_output(stream: IO[str] | io.TextIOBase) -> Iterator[None]:
    """Send what kfp.local writes while a pipeline runs (its log and the tasks' output) to
    ``stream``."""
    with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        yield


def plain(line: str) -> str:
    """``line`` without kfp.local's ANSI colour codes."""
    return _ANSI.sub("", line)


def parse_log_line(line: str) -> LogEvent | None:
    """The progress event a log line (colours removed, see :func:`plain`) reports, if any."""
    if match := _STARTED.search(line):
        return LogEvent(TASK_STARTED, match.group(1))
    if match := _FINISHED.search(line):
        return LogEvent(TASK_FINISHED, match.group(1), match.group(2))
    if match := _PIPELINE_DONE.search(line):
        return LogEvent(PIPELINE_FINISHED, match.group(1), match.group(2))
    return None


def task_error(lines: list[str]) -> str:
    """The exception a failed task raised: the last traceback's exception and message.

    Args:
        lines: The task's output lines as kfp.local printed them (indented), colours removed.
    """
    starts = [i for i, line in enumerate(lines) if "Traceback (most recent call last)" in line]
    if not starts:
        tail = [line for line in lines if line.strip()][-5:]
        return textwrap.dedent("\n".join(tail)).strip()
    block = lines[starts[-1] :]
    # KFP indents the task's output; the exception line is the first one at the
    # traceback's own indentation after the frames.
    indent = len(block[0]) - len(block[0].lstrip())
    for index in range(len(block) - 1, 0, -1):
        line = block[index]
        at_margin = len(line) - len(line.lstrip()) == indent
        if at_margin and _EXCEPTION_LINE.match(line.strip()):
            message = [text[indent:] if text[:indent].isspace() else text for text in block[index:]]
            return "\n".join(message).rstrip()
    return textwrap.dedent("\n".join(block[-5:])).strip()


@contextlib.contextmanager
def pipeline_job_id(job_id: str) -> Iterator[None]:
    """While a pipeline runs inside this block, its job id (the tasks'
    ``PIPELINE_JOB_ID_PLACEHOLDER``) is ``job_id`` instead of kfp.local's random digits.

    Only the first id kfp.local draws in the block is replaced (the pipeline's, drawn before
    any task); task ids stay random. Run one pipeline per block.
    """
    from kfp.local import placeholder_utils

    draw_random_id = placeholder_utils.make_random_id
    drawn = 0

    def make_id() -> str:
        nonlocal drawn
        drawn += 1
        return job_id if drawn == 1 else draw_random_id()

    placeholder_utils.make_random_id = make_id
    try:
        yield
    finally:
        placeholder_utils.make_random_id = draw_random_id


@contextlib.contextmanager
def docker_exit_status_kept() -> Iterator[None]:
    """While a pipeline runs with ``DockerRunner`` inside this block, each task's state is its
    container's exit status (see the module docstring); containers are removed when done."""
    from kfp.local import docker_task_handler

    original = docker_task_handler.run_docker_container
    docker_task_handler.run_docker_container = _run_docker_container
    try:
        yield
    finally:
        docker_task_handler.run_docker_container = original


def _run_docker_container(
    client: Any, image: str, command: list[str], volumes: dict[str, Any], **run_args: Any
) -> int:
    """kfp 2.17's ``run_docker_container`` (same pull and output), waiting for the exit status
    of a container that is only removed afterwards."""
    from kfp.local import docker_task_handler

    image = docker_task_handler.add_latest_tag_if_not_present(image=image)
    present = any(
        image in (existing.tags + existing.attrs["RepoDigests"])
        for existing in client.images.list()
    )
    if present:
        print(f"Found image {image!r}\n")
    else:
        print(f"Pulling image {image!r}")
        client.images.pull(image)
        print("Image pull complete\n")
    container = client.containers.run(
        image=image,
        command=command,
        detach=True,
        stdout=True,
        stderr=True,
        volumes=volumes,
        **run_args,
    )
    try:
        for line in container.logs(stream=True, follow=True):
            print(line.decode(errors="replace"), end="")
        return int(container.wait()["StatusCode"])
    finally:
        container.remove(force=True)


def run_folder(pipeline_root: Path) -> Path | None:
    """The folder kfp.local made for the one run under ``pipeline_root``; None if not one."""
    run_dirs = [path for path in pipeline_root.iterdir() if path.is_dir()]
    return run_dirs[0] if len(run_dirs) == 1 else None


def task_folder(run_dir: Path, task: str) -> Path | None:
    """The folder of ``task``'s outputs in a run folder; None if the task wrote none."""
    path = run_dir / task
    return path if path.is_dir() else None
