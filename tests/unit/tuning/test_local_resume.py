"""Resume after a real SIGKILL of the executor process: finished trials are never rerun."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

from kaizen.tuning.local import load_result, run_experiment
from kaizen.tuning.result import ExperimentResult

EXECUTOR = """
import json, sys
from kaizen.tuning.local import run_experiment
run_experiment(json.load(open(sys.argv[1])), work_dir=sys.argv[2])
"""


def _load_fake() -> ModuleType:
    path = Path(__file__).with_name("fake_trial.py")
    spec = importlib.util.spec_from_file_location("kaizen_tests_fake_trial_resume", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fake = _load_fake()
GRID_X = ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]


def process_gone(pid: int) -> bool:
    """No such process, or a zombie: dead, waiting for its (new) parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X")


def wait_for(work_dir: Path, done: int, timeout_s: float = 30) -> ExperimentResult:
    """Poll experiment.json until ``done`` trials succeeded and a started one still runs."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (work_dir / "experiment.json").exists():
            recorded = json.loads((work_dir / "experiment.json").read_text())
            result = ExperimentResult.from_dict(recorded)
            running_with_pid = [
                t
                for t in result.trials_with_status("Running")
                if recorded["executor"]["trials"][t.name].get("pid")
            ]
            if len(result.trials_with_status("Succeeded")) >= done and running_with_pid:
                return result
        time.sleep(0.02)
    raise AssertionError(f"no {done} finished trials in {work_dir} after {timeout_s} s")


def wait_gone(pid: int, timeout_s: float = 60) -> bool:
    """Poll until ``pid`` is gone (True), or the deadline passes (False)."""
    deadline = time.monotonic() + timeout_s
    while not process_gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_killed_executor_resumes_without_rerunning_finished_trials(
    tmp_path: Path, repo_root: Path
) -> None:
    body = fake.experiment_body(
        "fake-resume",
        algorithm="grid",
        parameters=[
            {
                "name": "x",
                "parameterType": "double",
                "feasibleSpace": {"min": "0.0", "max": "1.0", "step": "0.2"},
            }
        ],
        # The first trial to start is slow (120 s an epoch): it is surely still running when
        # the executor is killed, and would outlive the wait below if it were not killed too.
        trial_args=(
            "--epochs=4",
            "--sleep=0.2",
            f"--slow-first={tmp_path / 'slow'}",
            "--slow-sleep=120",
        ),
        max_trials=6,
        parallel=2,
    )
    body_file, work_dir = tmp_path / "body.json", tmp_path / "work"
    body_file.write_text(json.dumps(body))
    executor = subprocess.Popen(
        [sys.executable, "-c", EXECUTOR, str(body_file), str(work_dir)], cwd=repo_root
    )
    try:
        before = wait_for(work_dir, done=2)
        executor.send_signal(signal.SIGKILL)
        executor.wait(timeout=10)
    finally:
        if executor.poll() is None:
            executor.kill()
    # Read what the killed executor had recorded last (it may have moved on after `before`).
    before = load_result(work_dir)
    recorded = json.loads((work_dir / "experiment.json").read_text())
    finished_before = {t.name: t for t in before.trials if t.finished}
    interrupted = before.trials_with_status("Running")
    assert len(finished_before) >= 2 and interrupted
    # The trials die with their executor (Linux parent-death signal), not run on unseen.
    slow = [
        t
        for t in interrupted
        if any(
            e["event"] == "slow" for e in fake.read_events(work_dir / "trials" / t.name / "output")
        )
    ]
    assert len(slow) == 1, "the slow trial was interrupted"
    for trial in interrupted:
        pid = recorded["executor"]["trials"][trial.name].get("pid")
        assert pid is None or wait_gone(pid), f"trial {trial.name} outlived its executor"
    slow_events = fake.read_events(work_dir / "trials" / slow[0].name / "output")
    assert [e["event"] for e in slow_events] == ["start", "slow"]  # killed in its first epoch

    result = run_experiment(body, work_dir=work_dir)

    assert result.status == "Succeeded", result.reason
    assert len(result.trials) == 6 and all(t.status == "Succeeded" for t in result.trials)
    by_name = {t.name: t for t in result.trials}
    assert len(by_name) == 6
    for name, trial in finished_before.items():
        assert by_name[name] == trial  # the very same record: not rerun
        starts = [
            e
            for e in fake.read_events(work_dir / "trials" / name / "output")
            if e["event"] == "start"
        ]
        assert len(starts) == 1
    after = json.loads((work_dir / "experiment.json").read_text())["executor"]["trials"]
    for trial in interrupted:
        assert by_name[trial.name].parameters == trial.parameters  # rerun as the same trial
        attempts_before = recorded["executor"]["trials"][trial.name]["attempts"]
        assert after[trial.name]["attempts"] == attempts_before + 1
    # Grid search visited every point once: the study knew the finished trials.
    assert sorted(t.parameters["x"] for t in result.trials) == GRID_X
    assert result.optimal_trial is not None
    assert result.best_parameters() == {"x": "0.2"}  # quality peaks at x = 0.3
    assert os.path.exists(work_dir / "optuna.journal")


def test_a_trial_asked_but_not_recorded_before_a_kill_is_adopted(tmp_path: Path) -> None:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    body = fake.experiment_body(max_trials=1)
    first = run_experiment(body, work_dir=tmp_path)
    # What a kill between Optuna's create-trial and its parameter writes leaves behind: a
    # RUNNING trial in the journal, without parameters, that no record knows.
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "optuna.journal")))
    optuna.load_study(study_name="fake", storage=storage).ask()

    result = run_experiment(body, work_dir=tmp_path, max_trial_count=2)

    assert result.trials[0] == first.trials[0]
    adopted = result.trials[1]
    assert adopted.status == "Succeeded"
    assert set(adopted.parameters) == {"x", "opt", "units"}
    argv = fake.read_events(tmp_path / "trials" / adopted.name / "output")[0]["argv"]
    assert f"--x={adopted.parameters['x']}" in argv
    study = optuna.load_study(study_name="fake", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
