"""The kfp.local adapter still reads what kfp.local writes (its version check is in
tests/unit/platform/test_library_versions.py).

The last tests run two tiny compiled pipelines on the real kfp.local (three task
subprocesses in all, a few seconds), through :func:`kaizen.pipeline.runner.run_pipeline`:
if kfp.local rewords its log lines, stops indenting task output or moves its output
folders, they fail naming what was not recognised. (A pipeline of one task runs as a
single component, without the pipeline's own lines, so each has two.)

No ``from __future__ import annotations`` here: KFP reads the components' annotations as
types.
"""

from pathlib import Path

import pytest
from kfp import compiler, dsl

from kaizen.pipeline import kfp_local_adapter as kfp_local
from kaizen.pipeline.runner import RunResult, TaskEvent, run_pipeline
from kaizen.platform import library_versions
from kaizen.platform.library_versions import UnsupportedLibraryVersionError
from kaizen.platform.settings import load_settings

# Lines as kfp 2.17's kfp.local writes them (colours included), from a real run.
STARTED = "11:42:33.719 - INFO - Executing task \x1b[96m'ok'\x1b[0m"
SUCCEEDED = (
    "11:42:36.739 - INFO - Task \x1b[96m'ok'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m"
)
FAILED = (
    "11:42:38.851 - ERROR - Task \x1b[96m'boom'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m"
)
PIPELINE_FAILED = (
    "11:42:38.852 - ERROR - Pipeline \x1b[95m'probe'\x1b[0m finished with status "
    "\x1b[91mFAILURE\x1b[0m. Inner task failed: \x1b[96m'boom'\x1b[0m."
)
TRACEBACK = [
    "    Traceback (most recent call last):",
    '      File "<frozen runpy>", line 198, in _run_module_as_main',
    '      File "/tmp/tmp.nbVrydeHCY/ephemeral_component.py", line 8, in boom',
    '        raise ValueError(f"bad value {x}")',
    "    ValueError: bad value 2",
    "    ",
]


def test_a_run_on_an_unsupported_kfp_is_refused_before_it_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(library_versions, "installed_version", lambda library: "2.18.0")
    settings = load_settings()
    with pytest.raises(UnsupportedLibraryVersionError, match=r"kfp 2\.18\.0 is installed"):
        run_pipeline(tmp_path / "never-read.yaml", {}, settings)
    assert not settings.pipeline_root.exists()


def test_progress_lines_are_read_with_their_colours_removed() -> None:
    events = [kfp_local.parse_log_line(kfp_local.plain(line)) for line in (STARTED, SUCCEEDED)]
    assert events == [
        kfp_local.LogEvent(kfp_local.TASK_STARTED, "ok"),
        kfp_local.LogEvent(kfp_local.TASK_FINISHED, "ok", "SUCCESS"),
    ]
    assert kfp_local.parse_log_line(kfp_local.plain(FAILED)) == kfp_local.LogEvent(
        kfp_local.TASK_FINISHED, "boom", "FAILURE"
    )
    assert kfp_local.parse_log_line(kfp_local.plain(PIPELINE_FAILED)) == kfp_local.LogEvent(
        kfp_local.PIPELINE_FINISHED, "probe", "FAILURE"
    )
    assert kfp_local.parse_log_line("    hello from ok") is None


def test_a_failed_tasks_error_is_its_exception_line() -> None:
    assert kfp_local.task_error(TRACEBACK) == "ValueError: bad value 2"
    assert kfp_local.task_error(["    one", "    two", ""]) == "one\ntwo"


@dsl.component(base_image="python:3.11")
def adapter_probe_ok(x: int, report: dsl.Output[dsl.Artifact]) -> int:
    import json

    print("hello from ok")
    with open(report.path, "w") as handle:
        json.dump({"x": x}, handle)
    return x + 1


@dsl.component(base_image="python:3.11")
def adapter_probe_boom(x: int) -> None:
    raise ValueError(f"bad value {x}")


@dsl.pipeline(name="probe-success")
def probe_ok(x: int = 1) -> None:
    first = adapter_probe_ok(x=x)
    adapter_probe_ok(x=first.outputs["Output"])


@dsl.pipeline(name="probe-failure")
def probe_boom(x: int = 1) -> None:
    failing = adapter_probe_boom(x=x)
    adapter_probe_ok(x=x).after(failing)  # never runs


def _run(pipeline: object, tmp_path: Path) -> tuple[RunResult, list[TaskEvent]]:
    compiled = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(pipeline, str(compiled))
    events: list[TaskEvent] = []
    result = run_pipeline(compiled, {"x": 1}, load_settings(), on_event=events.append)
    return result, events


def test_a_real_kfp_local_run_is_read_task_by_task(tmp_path: Path) -> None:
    result, events = _run(probe_ok, tmp_path)

    log = result.log_path.read_text()
    assert [(event.task, event.state) for event in events] == [
        ("adapter-probe-ok", "RUNNING"),
        ("adapter-probe-ok", "SUCCESS"),
        ("adapter-probe-ok-2", "RUNNING"),
        ("adapter-probe-ok-2", "SUCCESS"),
    ], f"kfp.local's progress lines were not recognised; its log:\n{log}"
    assert result.state == "SUCCEEDED", f"no 'Pipeline ... SUCCESS' line recognised:\n{log}"
    assert result.error is None
    assert result.run_dir is not None
    assert result.run_dir.parent == load_settings().pipeline_root / result.run_id
    assert result.task_dir("adapter-probe-ok") == result.run_dir / "adapter-probe-ok"
    output = result.executor_output("adapter-probe-ok-2")
    assert output["parameterValues"] == {"Output": 3}, output
    assert result.json_artifact("adapter-probe-ok-2", "report") == {"x": 2}
    assert result.task_dir("adapter-probe-ok-3") is None


def test_a_real_kfp_local_failure_names_the_tasks_exception(tmp_path: Path) -> None:
    result, events = _run(probe_boom, tmp_path)

    log = result.log_path.read_text()
    assert [(event.task, event.state) for event in events] == [
        ("adapter-probe-boom", "RUNNING"),
        ("adapter-probe-boom", "FAILURE"),
    ], f"kfp.local's progress lines were not recognised; its log:\n{log}"
    assert "Pipeline 'probe-failure' finished with status FAILURE" in kfp_local.plain(log)
    assert result.state == "FAILED"
    assert result.error == "task 'adapter-probe-boom' failed:\nValueError: bad value 1", log


@dsl.component(base_image="python:3.11")
def adapter_probe_ids(job_id: str, report: dsl.Output[dsl.Artifact]) -> None:
    with open(report.path, "w") as handle:
        handle.write(job_id)


@dsl.pipeline(name="probe-ids")
def probe_ids(x: int = 1) -> None:
    adapter_probe_ids(job_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
    adapter_probe_ok(x=x)


def test_the_tasks_see_the_runners_run_id_as_the_pipeline_job_id(tmp_path: Path) -> None:
    from kfp.local import placeholder_utils

    result, _ = _run(probe_ids, tmp_path)

    assert result.state == "SUCCEEDED", result.error
    report = result.artifact("adapter-probe-ids", "report")
    assert report is not None and report.read_text() == result.run_id
    # kfp.local's own id maker is back once the run is over
    assert placeholder_utils.make_random_id().isdigit()


def test_the_runner_given_runs_the_tasks_and_each_tasks_output_is_kept(tmp_path: Path) -> None:
    from kfp import local
    from kfp.local.config import LocalExecutionConfig

    compiled = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(probe_ok, str(compiled))
    given = local.SubprocessRunner(use_venv=False)

    result = run_pipeline(compiled, {"x": 1}, load_settings(), runner=given)

    assert result.state == "SUCCEEDED", result.error
    assert LocalExecutionConfig.instance is not None
    assert LocalExecutionConfig.instance.runner is given
    assert any("hello from ok" in line for line in result.task_output["adapter-probe-ok"])
    assert any("hello from ok" in line for line in result.task_output["adapter-probe-ok-2"])


class _GoneContainer:
    """A container that exited 3 and that a runtime like podman removes as soon as it can."""

    def __init__(self) -> None:
        self.removed = False
        self.run_args: dict[str, object] = {}

    def logs(self, stream: bool, follow: bool = True) -> list[bytes]:
        return [b"starting\n", b"Traceback ...\n"]

    def wait(self) -> dict[str, int]:
        import docker

        if self.run_args.get("auto_remove"):
            raise docker.errors.NotFound("no such container")
        return {"StatusCode": 3}

    def remove(self, force: bool) -> None:
        self.removed = True


class _Client:
    def __init__(self, container: _GoneContainer) -> None:
        self.container = container
        self.images = self
        self.containers = self

    def list(self) -> list[object]:
        return []

    def pull(self, image: str) -> None:
        pass

    def run(self, **run_args: object) -> _GoneContainer:
        self.container.run_args = run_args
        return self.container


def test_a_crashed_container_fails_its_task_even_once_removed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from kfp.local import docker_task_handler

    def run(container: _GoneContainer) -> int:
        return docker_task_handler.run_docker_container(
            client=_Client(container),
            image="127.0.0.1:5000/kaizen-component@sha256:" + "0" * 64,
            command=["python"],
            volumes={},
        )

    # kfp.local's own: auto-removed, the status is lost and the crash counts as success
    assert run(_GoneContainer()) == 0
    container = _GoneContainer()
    with kfp_local.docker_exit_status_kept():
        assert run(container) == 3
    assert container.removed and not container.run_args.get("auto_remove")
    assert "Traceback ..." in capsys.readouterr().out
    assert run(_GoneContainer()) == 0  # kfp.local's own function is back
