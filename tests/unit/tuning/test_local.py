"""The local executor on a cheap objective: real trial processes, real kills, real files."""

from __future__ import annotations

import fcntl
import importlib.util
import json
import re
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import optuna
import pytest

from kaizen.tuning.local import (
    LOCK_FILE,
    ExecutorBusyError,
    ExperimentMismatchError,
    MedianStop,
    MetricParser,
    TuningConfigError,
    build_trial_command,
    load_result,
    median_stop_message,
    run_experiment,
)
from kaizen.tuning.optuna_map import DEFAULT_RANDOM_STATE, build_sampler, search_space
from kaizen.tuning.result import TrialRecord
from kaizen.tuning.spec import DEFAULT_METRICS_FORMAT, ExperimentSpecError


def _load_fake() -> ModuleType:
    path = Path(__file__).with_name("fake_trial.py")
    spec = importlib.util.spec_from_file_location("kaizen_tests_fake_trial", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fake = _load_fake()
TRIAL_NAME = re.compile(r"[a-z0-9]{8}")
GRID_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "x",
        "parameterType": "double",
        "feasibleSpace": {"min": "0.0", "max": "1.0", "step": "0.2"},
    },
    {"name": "opt", "parameterType": "categorical", "feasibleSpace": {"list": ["adam", "sgd"]}},
]


def output_dir(work_dir: Path, trial: TrialRecord) -> Path:
    return work_dir / "trials" / trial.name / "output"


def process_gone(pid: int) -> bool:
    """No such process, or a zombie: dead, waiting for its (new) parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X")


# ------------------------------------------------------------------ algorithm mapping


@pytest.mark.parametrize(
    ("algorithm", "settings", "sampler_type", "attributes"),
    [
        ("random", {"random_state": "7"}, optuna.samplers.RandomSampler, {}),
        (
            "tpe",
            {"n_startup_trials": "2", "n_ei_candidates": "5"},
            optuna.samplers.TPESampler,
            {"_n_startup_trials": 2, "_n_ei_candidates": 5, "_multivariate": False},
        ),
        ("multivariate-tpe", {}, optuna.samplers.TPESampler, {"_multivariate": True}),
        ("cmaes", {"sigma": "0.3"}, optuna.samplers.CmaEsSampler, {"_sigma0": 0.3}),
        ("sobol", {}, optuna.samplers.QMCSampler, {"_qmc_type": "sobol"}),
        ("grid", {}, optuna.samplers.GridSampler, {"_n_min_trials": 12}),
    ],
)
def test_katib_algorithms_map_to_optuna_samplers_with_their_settings(
    algorithm: str, settings: dict[str, str], sampler_type: type, attributes: dict[str, Any]
) -> None:
    parameters = GRID_PARAMETERS if algorithm == "grid" else None
    body = fake.experiment_body(algorithm=algorithm, settings=settings, parameters=parameters)
    space = search_space(body, grid=algorithm == "grid")

    sampler = build_sampler(body, space, max_trial_count=3)

    assert isinstance(sampler, sampler_type)
    for name, value in attributes.items():
        assert getattr(sampler, name) == value


@pytest.mark.parametrize(
    "algorithm", ["random", "grid", "tpe", "multivariate-tpe", "cmaes", "sobol"]
)
def test_each_algorithm_runs_trials_in_the_feasible_space(algorithm: str, tmp_path: Path) -> None:
    parameters = GRID_PARAMETERS if algorithm == "grid" else None
    body = fake.experiment_body(
        f"fake-{algorithm}", algorithm=algorithm, parameters=parameters, max_trials=4, parallel=2
    )

    result = run_experiment(body, work_dir=tmp_path)

    assert result.status == "Succeeded", result.reason
    assert [t.status for t in result.trials] == ["Succeeded"] * 4
    seen = set()
    for trial in result.trials:
        prefix, suffix = trial.name.rsplit("-", 1)
        assert prefix == f"fake-{algorithm}" and TRIAL_NAME.fullmatch(suffix)
        assert set(trial.parameters) == {p["name"] for p in (parameters or fake.DEFAULT_PARAMETERS)}
        assert 0.0 <= float(trial.parameters["x"]) <= 1.0
        assert trial.parameters["opt"] in ("adam", "sgd")
        if algorithm != "grid":
            assert int(trial.parameters["units"]) in range(16, 129, 16)
        else:
            assert trial.parameters["x"] in ("0.0", "0.2", "0.4", "0.6", "0.8", "1.0")
        # The trial got exactly these strings on its command line.
        argv = fake.read_events(output_dir(tmp_path, trial))[0]["argv"]
        assert f"--x={trial.parameters['x']}" in argv and f"--opt={trial.parameters['opt']}" in argv
        seen.add(tuple(sorted(trial.parameters.items())))
    if algorithm == "grid":
        assert len(seen) == 4  # grid never repeats a point
    best = max(result.trials, key=lambda t: t.metrics["val_roc_auc"])
    assert result.optimal_trial is not None
    assert result.optimal_trial["bestTrialName"] == best.name
    assert result.best_parameters() == best.parameters


def test_same_seed_same_trials_other_seed_other_trials(tmp_path: Path) -> None:
    def params(seed: str | None, where: str) -> list[tuple[str, dict[str, str]]]:
        settings = {"random_state": seed} if seed is not None else {}
        body = fake.experiment_body(algorithm="tpe", settings=settings, max_trials=3)
        return [
            (t.name, t.parameters) for t in run_experiment(body, work_dir=tmp_path / where).trials
        ]

    first = params(None, "a")
    assert params(str(DEFAULT_RANDOM_STATE), "b") == first  # unseeded means the documented seed
    assert params("7", "c") != first


@pytest.mark.parametrize("algorithm", ["bayesianoptimization", "hyperband", "pbt"])
def test_algorithms_without_a_local_sampler_are_refused_by_name(
    algorithm: str, tmp_path: Path
) -> None:
    body = fake.experiment_body(algorithm=algorithm)

    with pytest.raises(TuningConfigError) as caught:
        run_experiment(body, work_dir=tmp_path / "work")

    message = str(caught.value)
    assert f"algorithmName {algorithm!r} is not supported" in message
    assert "random, grid, tpe, multivariate-tpe, cmaes, sobol" in message
    assert not (tmp_path / "work").exists()  # nothing ran, nothing written


def test_cmaes_restarts_optuna_no_longer_has_are_refused(tmp_path: Path) -> None:
    body = fake.experiment_body(algorithm="cmaes", settings={"restart_strategy": "ipop"})

    with pytest.raises(TuningConfigError, match="restart_strategy 'ipop' cannot run locally"):
        run_experiment(body, work_dir=tmp_path)


def test_unknown_algorithm_setting_is_refused(tmp_path: Path) -> None:
    body = fake.experiment_body(algorithm="sobol", settings={"n_startup_trials": "3"})

    with pytest.raises(
        TuningConfigError, match="unknown setting 'n_startup_trials' for algorithm 'sobol'"
    ):
        run_experiment(body, work_dir=tmp_path)


def test_grid_needs_a_step_on_every_double(tmp_path: Path) -> None:
    body = fake.experiment_body(algorithm="grid", max_trials=2)

    with pytest.raises(ExperimentSpecError, match=r"spec.parameters\[0\].feasibleSpace.step.*'x'"):
        run_experiment(body, work_dir=tmp_path)
    # The executor's own check, for bodies that reach it: the parameter is named.
    with pytest.raises(
        TuningConfigError, match=r"spec.parameters\[0\] \(x\): feasibleSpace.step is required"
    ):
        search_space(body, grid=True)


def test_distributions_optuna_cannot_sample_are_refused_by_parameter(tmp_path: Path) -> None:
    parameters = [
        {
            "name": "x",
            "parameterType": "double",
            "feasibleSpace": {"min": "0.1", "max": "0.9", "distribution": "normal"},
        }
    ]
    body = fake.experiment_body(parameters=parameters)

    with pytest.raises(
        TuningConfigError,
        match=r"spec.parameters\[0\] \(x\): feasibleSpace.distribution 'normal' is not supported",
    ):
        run_experiment(body, work_dir=tmp_path)


def test_grid_budget_beyond_the_grid_is_refused(tmp_path: Path) -> None:
    body = fake.experiment_body(algorithm="grid", parameters=GRID_PARAMETERS, max_trials=4)

    with pytest.raises(TuningConfigError, match=r"maxTrialCount \(13\) exceeds the 12 points"):
        run_experiment(body, work_dir=tmp_path, max_trial_count=13)


def test_parameter_types_reach_the_trial_as_katib_strings() -> None:
    body = fake.experiment_body(
        parameters=[
            {
                "name": "x",
                "parameterType": "double",
                "feasibleSpace": {"min": "0.1", "max": "0.9", "step": "0.1"},
            },
            {
                "name": "y",
                "parameterType": "double",
                "feasibleSpace": {"min": "0.001", "max": "1", "distribution": "logUniform"},
            },
            {
                "name": "units",
                "parameterType": "int",
                "feasibleSpace": {"min": "16", "max": "64", "step": "16"},
            },
            {"name": "opt", "parameterType": "discrete", "feasibleSpace": {"list": ["0.50", "2"]}},
        ]
    )
    space = search_space(body)

    assert space["x"].distribution == optuna.distributions.FloatDistribution(0.1, 0.9, step=0.1)
    assert space["y"].distribution.log
    assert space["units"].distribution == optuna.distributions.IntDistribution(16, 64, step=16)
    assert space["opt"].distribution.choices == ("0.50", "2")  # Katib passes the list's text
    assert space["x"].format(0.1 + 0.2) == "0.3"  # stepped doubles are rounded to the step
    assert space["units"].format(48) == "48"
    assert space["x"].to_internal("0.3") == pytest.approx(0.3)
    with pytest.raises(TuningConfigError, match="'units': recorded value '20' is outside"):
        space["units"].to_internal("20")


# ------------------------------------------------------------------ commands and metrics


def test_trial_command_uses_this_python_and_the_trials_own_folders(tmp_path: Path) -> None:
    body = fake.experiment_body(trial_args=("--checkpoint-dir", "/ckpt", "--epochs=2"))

    argv = build_trial_command(
        body,
        {"x": "0.25", "opt": "sgd", "units": "32"},
        output_dir=tmp_path / "out",
        checkpoint_dir=tmp_path / "ckpt",
        python="/venv/bin/python",
    )

    assert argv == [
        "/venv/bin/python",
        str(fake.PROGRAM),
        "--x=0.25",
        "--opt=sgd",
        "--units=32",
        "--checkpoint-dir",
        str(tmp_path / "ckpt"),
        "--epochs=2",
        f"--output-dir={tmp_path / 'out'}",
    ]


def test_metric_parser_reads_lines_like_katibs_stdout_collector() -> None:
    parser = MetricParser(["val_roc_auc", "val_loss"], [DEFAULT_METRICS_FORMAT])

    assert parser.parse("epoch=3 loss=0.2 val_loss=2.5e-1 val_roc_auc=0.91 other=7") == (
        3,
        {"val_loss": 0.25, "val_roc_auc": 0.91},
    )
    assert parser.parse("best_epoch=2 epochs_run=4 val_roc_auc=.93") == (
        None,
        {"val_roc_auc": 0.93},
    )
    assert parser.parse("val_roc_auc=nan val_loss= x") == (None, {})
    custom = MetricParser(["auc"], [r"(\w+):\s*([\d.]+)"])
    assert custom.parse("epoch: 2 auc: 0.8 auc=0.1") == (2, {"auc": 0.8})


def record(name: str, values: list[float], status: str = "Succeeded") -> TrialRecord:
    return TrialRecord(
        name=name,
        parameters={},
        status=status,  # type: ignore[arg-type]
        intermediate=[(step, {"auc": value}) for step, value in enumerate(values, start=1)],
    )


def test_median_stop_rule_compares_best_so_far_with_the_median_running_average() -> None:
    rule = MedianStop(min_trials_required=3, start_step=2)
    done = [
        record("a", [0.6, 0.8, 0.9]),
        record("b", [0.5, 0.7, 0.9]),
        record("c", [0.1, 0.3, 0.9]),
    ]
    # Running averages up to step 2: a 0.7, b 0.6, c 0.2 -> median 0.6.

    def decide(
        values: list[float], succeeded: list[TrialRecord] = done, goal: str = "maximize"
    ) -> str | None:
        return median_stop_message(
            record("r", values, "Running"),
            succeeded,
            objective="auc",
            goal_type=goal,
            rule=rule,  # type: ignore[arg-type]
        )

    assert decide([0.1]) is None  # before start_step
    message = decide([0.55, 0.59])
    assert message is not None and "best auc 0.59 by step 2 is below the median 0.6" in message
    assert decide([0.61, 0.2]) is None  # its best so far counts, not its latest
    assert decide([0.1, 0.2], succeeded=done[:2]) is None  # fewer than min_trials_required
    assert decide([0.65, 0.65], goal="minimize") is not None  # minimize: worse is higher


# ------------------------------------------------------------------ running experiments


def test_parallel_trials_really_run_at_the_same_time(tmp_path: Path) -> None:
    # Each trial waits (up to 60 s) for the other to start before it trains: run one after the
    # other, the first would wait alone; run together, they meet however slow the machine is.
    body = fake.experiment_body(
        trial_args=("--epochs=2", f"--meet={tmp_path / 'meet'}", "--meet-count=2"),
        max_trials=2,
        parallel=2,
    )

    result = run_experiment(body, work_dir=tmp_path / "work")

    assert [t.status for t in result.trials] == ["Succeeded", "Succeeded"]
    spans = []
    for trial in result.trials:
        events = fake.read_events(output_dir(tmp_path / "work", trial))
        assert [e["event"] for e in events][:2] == ["start", "met"]
        spans.append((events[0]["time"], events[-1]["time"]))
    assert max(start for start, _ in spans) < min(end for _, end in spans)  # overlapping


def test_medianstop_kills_a_clearly_worse_trial(tmp_path: Path) -> None:
    epochs = 6
    body = fake.experiment_body(
        parameters=[fake.DEFAULT_PARAMETERS[0]],
        trial_args=(
            f"--epochs={epochs}",
            "--sleep=0.1",
            # Trials 3 and 5 (x 0.95 and 0.9) are far worse than the others, in start order.
            "--x-by-order=0.3,0.35,0.95,0.3,0.9,0.32",
            f"--order-dir={tmp_path / 'order'}",
            # SIGTERM is ignored, so only the executor's SIGKILL can stop a trial.
            "--ignore-sigterm",
        ),
        max_trials=6,
        early_stopping={"min_trials_required": "2", "start_step": "2"},
    )
    (tmp_path / "order").mkdir()

    result = run_experiment(body, work_dir=tmp_path / "work", kill_grace_s=0.3)

    assert result.status == "Succeeded"
    assert "ExperimentMaxTrialsReached: 6 trials completed" in result.reason  # stopped ones count
    assert [t.status for t in result.trials] == [
        "Succeeded",
        "Succeeded",
        "EarlyStopped",
        "Succeeded",
        "EarlyStopped",
        "Succeeded",
    ]
    best_succeeded = max(t.metrics["val_roc_auc"] for t in result.trials_with_status("Succeeded"))
    stopped = result.trials_with_status("EarlyStopped")
    for trial in stopped:
        outputs = output_dir(tmp_path / "work", trial)
        epochs_run = [e["epoch"] for e in fake.read_events(outputs) if e["event"] == "epoch"]
        assert max(epochs_run) < epochs
        assert process_gone(int((outputs / "pid").read_text()))
        assert (
            "medianstop: best val_roc_auc" in trial.message and "below the median" in trial.message
        )
        assert 0 < trial.metrics["val_roc_auc"] < best_succeeded  # it keeps what it reached
        assert max(step for step, _ in trial.intermediate) < epochs
        # Its process is gone (asserted above), so these events are final: it was stopped
        # mid-training and wrote nothing after.
        events = fake.read_events(outputs)
        assert events[-1]["event"] == "epoch" and events[-1]["epoch"] < epochs


def test_reaching_the_goal_ends_the_experiment_and_kills_running_trials(tmp_path: Path) -> None:
    body = fake.experiment_body(
        parameters=[
            {"name": "x", "parameterType": "categorical", "feasibleSpace": {"list": ["0.3"]}}
        ],
        # Of the two trials started together one is slow (60 s per epoch); the fast one
        # reaches 0.875 >= goal after 3 short epochs.
        trial_args=(
            "--epochs=3",
            "--sleep=0.05",
            f"--slow-first={tmp_path / 'slow'}",
            "--slow-sleep=60",
        ),
        max_trials=10,
        parallel=2,
        goal=0.85,
    )

    result = run_experiment(body, work_dir=tmp_path / "work", kill_grace_s=2)

    assert result.status == "Succeeded" and result.goal_reached
    assert result.reason.startswith("ExperimentGoalReached: trial ")
    assert sorted(t.status for t in result.trials) == ["Killed", "Succeeded"]
    winner, killed = (
        result.trials_with_status("Succeeded")[0],
        result.trials_with_status("Killed")[0],
    )
    assert result.optimal_trial is not None and result.optimal_trial["bestTrialName"] == winner.name
    assert winner.metrics["val_roc_auc"] >= 0.85
    events = fake.read_events(tmp_path / "work" / "trials" / killed.name / "output")
    # Killed in its first slow epoch: the experiment did not wait for it.
    assert [e["event"] for e in events] == ["start", "slow"]
    assert process_gone(
        int((tmp_path / "work" / "trials" / killed.name / "output" / "pid").read_text())
    )
    assert "killed: the experiment ended (ExperimentGoalReached" in killed.message


def test_max_failed_trial_count_fails_the_experiment(tmp_path: Path) -> None:
    body = fake.experiment_body(trial_args=("--fail",), max_trials=6, max_failed=1)

    result = run_experiment(body, work_dir=tmp_path)

    assert result.status == "Failed"
    assert result.reason == "ExperimentFailed: 2 trials failed, more than maxFailedTrialCount (1)"
    assert [t.status for t in result.trials] == ["Failed", "Failed"]  # no third trial started
    for trial in result.trials:
        assert "exit code 3" in trial.message
        log = (tmp_path / "trials" / trial.name / "trial.log").read_text()
        assert "error: simulated failure" in log and "epoch=1" in log
    assert result.optimal_trial is None
    with pytest.raises(LookupError, match="no optimal trial"):
        result.best_parameters()


def test_a_trial_without_the_objective_metric_failed(tmp_path: Path) -> None:
    body = fake.experiment_body(trial_args=("--quiet",), max_trials=2, max_failed=0)

    result = run_experiment(body, work_dir=tmp_path)

    assert result.status == "Failed"
    assert [t.status for t in result.trials] == ["Failed"]
    assert result.trials[0].message.startswith(
        "metrics unavailable: the trial printed no val_roc_auc"
    )


def test_records_and_callbacks_follow_every_change(tmp_path: Path) -> None:
    body = fake.experiment_body(trial_args=("--epochs=3",), max_trials=2)
    seen: list[tuple[str, str, int]] = []

    def on_trial(trial: TrialRecord) -> None:
        seen.append((trial.name, trial.status, len(trial.intermediate)))
        recorded = load_result(tmp_path)  # the file is whole and already has this change
        assert recorded.status == "Running"
        assert trial.name in {t.name for t in recorded.trials}

    result = run_experiment(body, work_dir=tmp_path, on_trial=on_trial)

    first = result.trials[0].name
    statuses = [(status, steps) for name, status, steps in seen if name == first]
    assert statuses[0] == ("Running", 0) and statuses[-1] == ("Succeeded", 4)
    assert load_result(tmp_path) == result
    record = json.loads((tmp_path / "experiment.json").read_text())
    assert record["executor"]["trials"][first]["attempts"] == 1


def test_a_finished_experiment_is_not_rerun_but_a_larger_budget_continues(tmp_path: Path) -> None:
    body = fake.experiment_body(max_trials=2)
    first = run_experiment(body, work_dir=tmp_path)

    again = run_experiment(body, work_dir=tmp_path)
    more = run_experiment(body, work_dir=tmp_path, max_trial_count=3)

    assert again == first
    assert more.trials[:2] == first.trials and len(more.trials) == 3
    assert more.reason.startswith("ExperimentMaxTrialsReached: 3 trials completed")


def test_a_work_dir_of_another_spec_is_refused(tmp_path: Path) -> None:
    run_experiment(fake.experiment_body(max_trials=1, parallel=1), work_dir=tmp_path)
    changed = fake.experiment_body(trial_args=("--epochs=5",), max_trials=1)

    with pytest.raises(ExperimentMismatchError, match=r"the spec changed.*use a new work_dir"):
        run_experiment(changed, work_dir=tmp_path)


def test_two_executors_cannot_share_a_work_dir(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_text("")
    with open(tmp_path / LOCK_FILE, "r+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(ExecutorBusyError, match="another executor"):
            run_experiment(fake.experiment_body(max_trials=1), work_dir=tmp_path)


def test_timeout_kills_running_trials_and_a_rerun_continues(tmp_path: Path) -> None:
    body = fake.experiment_body(trial_args=("--epochs=3", "--sleep=0.4"), max_trials=2)

    timed_out = run_experiment(body, work_dir=tmp_path, timeout_s=0.5, kill_grace_s=1)
    resumed = run_experiment(body, work_dir=tmp_path)

    assert timed_out.status == "Failed" and timed_out.reason.startswith("ExperimentTimeout:")
    assert [t.status for t in timed_out.trials] == ["Killed"]
    assert resumed.status == "Succeeded"
    assert resumed.trials[0] == timed_out.trials[0]  # Katib counts Killed as completed
    assert resumed.trials[1].status == "Succeeded"


def test_an_interrupted_executor_leaves_no_trial_running(tmp_path: Path) -> None:
    body = fake.experiment_body(trial_args=("--epochs=20", "--sleep=0.5"), max_trials=1)

    def interrupt(trial: TrialRecord) -> None:
        if trial.intermediate:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_experiment(body, work_dir=tmp_path, on_trial=interrupt)

    recorded = load_result(tmp_path)
    assert recorded.status == "Running" and recorded.trials[0].status == "Running"
    pid = int((output_dir(tmp_path, recorded.trials[0]) / "pid").read_text())
    assert process_gone(pid)
    assert not [t for t in threading.enumerate() if t.name.startswith("trial-")]
