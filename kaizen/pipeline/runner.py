"""Run the compiled pipeline YAML on the embedded backend (``kfp.local``).

Parity rule: what runs here is the compiled YAML that goes to the cluster, not the Python
pipeline function. KFP's verbose task logs go to a log file under ``KAIZEN_HOME/logs``; the
caller gets one progress event per task start and end, and a summary read from the run's
artifacts. What the runner reads of kfp.local beyond its public API (log lines, output
folders) is in :mod:`kaizen.pipeline.kfp_local_adapter`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kaizen.pipeline import kfp_local_adapter as kfp_local
from kaizen.platform.settings import Settings


@dataclass
class TaskEvent:
    """A task started (``state`` is ``RUNNING``) or finished (``SUCCESS`` / ``FAILURE``)."""

    task: str
    state: str
    seconds: float = 0.0


@dataclass
class RunResult:
    """What one pipeline run did, read from its pipeline root."""

    run_id: str
    state: str
    run_dir: Path | None
    log_path: Path
    seconds: float
    tasks: dict[str, TaskEvent] = field(default_factory=dict)
    error: str | None = None
    # Each task's output lines as kfp.local printed them (colours removed).
    task_output: dict[str, list[str]] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.state == "SUCCEEDED"

    def task_dir(self, task: str) -> Path | None:
        if self.run_dir is None:
            return None
        return kfp_local.task_folder(self.run_dir, task)

    def artifact(self, task: str, output: str) -> Path | None:
        task_dir = self.task_dir(task)
        if task_dir is None:
            return None
        path = task_dir / output
        return path if path.exists() else None

    def json_artifact(self, task: str, output: str) -> dict[str, Any] | None:
        path = self.artifact(task, output)
        if path is None or not path.is_file():
            return None
        try:
            return dict(json.loads(path.read_text()))
        except (ValueError, OSError):
            return None

    def executor_output(self, task: str) -> dict[str, Any]:
        task_dir = self.task_dir(task)
        path = None if task_dir is None else task_dir / kfp_local.EXECUTOR_OUTPUT_FILE
        if path is None or not path.is_file():
            return {}
        return dict(json.loads(path.read_text()))


class _ProgressStream(io.TextIOBase):
    """Writes everything to the log file and reports task starts and ends as events."""

    def __init__(self, log: io.TextIOBase, on_event: Callable[[TaskEvent], None]) -> None:
        self._log = log
        self._on_event = on_event
        self._buffer = ""
        self._started: dict[str, float] = {}
        self.events: dict[str, TaskEvent] = {}
        self.task_lines: dict[str, list[str]] = {}
        self._current: str | None = None
        self.pipeline_state: str | None = None

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._log.write(text)
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            self._line(kfp_local.plain(line))
        return len(text)

    def flush(self) -> None:
        self._log.flush()

    def _line(self, line: str) -> None:
        logged = kfp_local.parse_log_line(line)
        if logged is None:
            if self._current is not None:
                self.task_lines[self._current].append(line)
        elif logged.kind == kfp_local.TASK_STARTED:
            task = logged.name
            self._started[task] = time.monotonic()
            self._current = task
            self.task_lines[task] = []
            event = TaskEvent(task, "RUNNING")
            self.events[task] = event
            self._on_event(event)
        elif logged.kind == kfp_local.TASK_FINISHED:
            task, state = logged.name, str(logged.status)
            seconds = time.monotonic() - self._started.get(task, time.monotonic())
            event = TaskEvent(task, state, seconds)
            self.events[task] = event
            self._current = None
            self._on_event(event)
        else:
            self.pipeline_state = logged.status


def new_run_id(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


def run_pipeline(
    pipeline_yaml: str | os.PathLike[str],
    arguments: Mapping[str, Any],
    settings: Settings,
    on_event: Callable[[TaskEvent], None] = lambda event: None,
    run_id: str | None = None,
    runner: Any | None = None,
) -> RunResult:
    """Execute a compiled pipeline YAML with ``kfp.local`` (each task a process, by default).

    Args:
        pipeline_yaml: the compiled pipeline (the artifact that goes to the cluster).
        arguments: pipeline parameters; unknown names are refused by KFP.
        settings: gives KAIZEN_HOME, where the pipeline root and the log go.
        on_event: called when a task starts and when it ends.
        run_id: name of this run; a fresh one by default. It is also the pipeline job id
            the tasks see, so MLflow, the registry and ``kaizen status`` show the same id.
        runner: the ``kfp.local`` runner; by default ``SubprocessRunner(use_venv=False)``,
            every task a process of this Python that sees ``settings.home``. A
            ``DockerRunner`` runs each task in a container of the task's image instead (the
            cluster rehearsal, :mod:`kaizen.rehearsal.pipeline`).

    Returns:
        The run's state, task events, run folder and log path.

    Raises:
        UnsupportedLibraryVersionError: the installed kfp is not a version
            :mod:`kaizen.pipeline.kfp_local_adapter` was written for.
    """
    from kfp import components, local

    kfp_local.check_version()
    run_id = run_id or new_run_id()
    pipeline_root = settings.pipeline_root / run_id
    pipeline_root.mkdir(parents=True, exist_ok=True)
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.logs_dir / f"run-{run_id}.log"
    pipeline = components.load_component_from_file(str(pipeline_yaml))

    if runner is None:
        # The task subprocesses inherit the environment: they must see the same KAIZEN_HOME.
        os.environ["KAIZEN_HOME"] = str(settings.home)
        runner = local.SubprocessRunner(use_venv=False)
    local.init(
        runner=runner,
        pipeline_root=str(pipeline_root),
        raise_on_error=False,
    )
    started = time.monotonic()
    error: str | None = None
    with open(log_path, "w", encoding="utf-8") as log:
        stream = _ProgressStream(log, on_event)
        with contextlib.ExitStack() as hooks:
            hooks.enter_context(kfp_local.capture_output(stream))
            hooks.enter_context(kfp_local.pipeline_job_id(run_id))
            if isinstance(runner, local.DockerRunner):
                hooks.enter_context(kfp_local.docker_exit_status_kept())
            try:
                pipeline(**arguments)
            except Exception as exc:  # a refused argument or a broken YAML, before any task ran
                error = f"{type(exc).__name__}: {exc}"
        stream.write("\n")
    seconds = time.monotonic() - started

    failed = [task for task, event in stream.events.items() if event.state == "FAILURE"]
    if failed and error is None:
        task = failed[0]
        error = f"task {task!r} failed:\n{kfp_local.task_error(stream.task_lines.get(task, []))}"
    state = "SUCCEEDED" if error is None and stream.pipeline_state == "SUCCESS" else "FAILED"
    if state == "FAILED" and error is None:
        error = f"the pipeline did not finish; see {log_path}"
    return RunResult(
        run_id=run_id,
        state=state,
        run_dir=kfp_local.run_folder(pipeline_root),
        log_path=log_path,
        seconds=seconds,
        tasks=stream.events,
        error=error,
        task_output=stream.task_lines,
    )
