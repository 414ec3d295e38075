"""Local backend of the tuning step: a Katib Experiment CR body run on this machine with Optuna.

:func:`run_experiment` plays Katib's controllers for one Experiment body (the same dict the
cluster launcher creates as a CR):

* **Suggestions.** ``spec.algorithm`` becomes an Optuna sampler (:mod:`kaizen.tuning.optuna_map`);
  the study lives in an Optuna journal file in ``work_dir`` so it survives the executor.
* **Trials.** Up to ``parallelTrialCount`` trials run at once, each a separate OS process
  running the trial container's ``command`` + ``args`` after
  :func:`kaizen.tuning.spec.substitute_trial_parameters` (the cluster's substitution). A
  leading ``python``/``python3`` becomes the ``python`` argument (the current interpreter),
  as ``kfp.local`` does; ``--output-dir`` (and ``--checkpoint-dir`` when the template has
  one) are rewritten to ``work_dir/trials/<trial>/output`` (``.../checkpoints``). Stdout and
  stderr go to ``work_dir/trials/<trial>/trial.log`` and are parsed line by line with the
  experiment's metrics filter (Katib's default StdOut filter unless
  ``metricsCollectorSpec.source.filter.metricsFormat`` says otherwise). Trial names are
  Katib's ``<experiment>-<8 characters>``, derived from the seed and the trial's index.
* **Metrics.** Only the objective and additional metrics are kept. A line's step is its
  ``epoch`` value, else the count of objective reports so far. A trial that exits non-zero or
  never reports the objective is Failed.
* **Early stopping** (``medianstop``, settings ``min_trials_required`` default 3 and
  ``start_step`` default 4): each time a running trial reports the objective at a step
  ``s >= start_step`` and at least ``min_trials_required`` trials have Succeeded, the median
  over those succeeded trials of their running average of the objective up to step ``s`` is
  computed; if the running trial's best objective so far is worse (maximize: lower) than
  that median, it is stopped for real: SIGTERM to its process group, SIGKILL after
  ``kill_grace_s``. It becomes EarlyStopped with the metrics it reached; like Katib, it counts
  as a completed trial and is told to the sampler with its value, and it is not a failure.
  This is the median stopping rule Katib documents; Katib's own service differs in two
  details we do not copy: it averages the first ``start_step`` reports only and compares the
  *mean* (not the median) of those averages with the current report.
* **Ending** (checked in Katib's order): a trial that has an observation (Succeeded or
  EarlyStopped) reaching ``objective.goal`` ends the experiment Succeeded; more than
  ``maxFailedTrialCount`` failed trials end it Failed; ``maxTrialCount`` completed trials
  (Succeeded, Failed, EarlyStopped, Killed) end it Succeeded. Trials still running then are
  killed and marked Killed. Trials are compared by the objective's metric strategy
  (``objective.metricStrategies``, Katib's defaults otherwise).
* **Records.** ``work_dir/experiment.json`` holds :meth:`ExperimentResult.to_dict` (status
  ``Running`` while in progress) plus the spec hash and per-trial executor data; it is
  rewritten atomically after every change, so :func:`load_result` always reads a whole file.
* **Resume.** Rerunning with the same ``work_dir`` continues the experiment: finished trials
  are kept as they are (never rerun); the sampler sees them through the journal. A trial that
  was running when the executor died is rerun from scratch under the same name and
  parameters (Katib restarts a trial whose pod died), after killing its process if it is
  still alive. An experiment that already met an end condition returns its recorded result.
  A ``work_dir`` recorded for a different spec is refused; the budget fields
  (``maxTrialCount``, ``parallelTrialCount``, ``maxFailedTrialCount``) may change between
  runs, so a finished experiment can be given a larger budget.
* **Timeout.** ``timeout_s`` kills the running trials (Killed) and returns a Failed result
  whose reason says so; a rerun with the same ``work_dir`` continues from there.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import queue
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from kaizen.platform.fileio import write_json_atomic
from kaizen.platform.locks import LockTimeoutError, acquire_file_lock, release_file_lock
from kaizen.platform.processes import parent_death_signal, pid_alive
from kaizen.tuning.optuna_map import (
    SearchParameter,
    TuningConfigError,
    algorithm_name,
    build_sampler,
    random_state,
    search_space,
)
from kaizen.tuning.result import (
    OBSERVED_STATUSES,
    ExperimentResult,
    ExperimentStatus,
    GoalType,
    MetricStrategy,
    TrialRecord,
    TrialStatus,
    build_optimal_trial,
    metric_strategies,
    trial_objective_value,
    utc_now,
)

__all__ = [
    "DEFAULT_KILL_GRACE_S",
    "EXPERIMENT_FILE",
    "ExecutorBusyError",
    "ExperimentMismatchError",
    "MedianStop",
    "MetricParser",
    "TuningConfigError",
    "build_trial_command",
    "load_result",
    "median_stop_message",
    "run_experiment",
    "spec_hash",
    "trial_name",
]

EXPERIMENT_FILE = "experiment.json"
JOURNAL_FILE = "optuna.journal"
LOCK_FILE = ".executor.lock"
TRIALS_DIR = "trials"
TRIAL_LOG = "trial.log"
#: Seconds between SIGTERM and SIGKILL when a trial is stopped.
DEFAULT_KILL_GRACE_S = 5.0
#: The metric name that, when a line reports it, is the line's step.
STEP_METRIC = "epoch"
#: Budget fields a resumed run may change (everything else must match the recorded spec).
BUDGET_FIELDS: tuple[str, ...] = ("maxTrialCount", "parallelTrialCount", "maxFailedTrialCount")
# Kubernetes' rand.String alphabet (no vowels, no confusable characters): Katib names trials
# <experiment>-<rand.String(8)>.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
#: Set in every trial's environment to its folder (how a resumed executor recognises an orphan).
TRIAL_DIR_ENV = "KAIZEN_TUNING_TRIAL_DIR"
_PYTHON = re.compile(r"python(3(\.\d+)?)?")
_POLL_S = 0.05


class ExperimentMismatchError(ValueError):
    """``work_dir`` holds the records of a different experiment spec."""


class ExecutorBusyError(RuntimeError):
    """Another executor process is running the experiment in the same ``work_dir``."""


# ----------------------------------------------------------------------------- helpers


def spec_hash(body: Mapping[str, Any]) -> str:
    """SHA-256 of what identifies an experiment: its name and spec without budget fields."""
    spec = {key: value for key, value in body["spec"].items() if key not in BUDGET_FIELDS}
    identity = {"name": body["metadata"]["name"], "spec": spec}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()


def trial_name(experiment: str, seed: int, index: int) -> str:
    """Katib-style trial name ``<experiment>-<8 characters>``, a pure function of its inputs."""
    rng = random.Random(f"{experiment}/{seed}/{index}")
    return f"{experiment}-{''.join(rng.choice(_NAME_ALPHABET) for _ in range(8))}"


def _rewrite_flag(argv: list[str], flag: str, value: str) -> bool:
    """Set ``flag`` (``--flag=x`` or ``--flag x``) to ``value`` in place; False if absent."""
    found = False
    for position, arg in enumerate(argv):
        if arg.startswith(f"{flag}="):
            argv[position] = f"{flag}={value}"
            found = True
        elif arg == flag and position + 1 < len(argv):
            argv[position + 1] = value
            found = True
    return found


def build_trial_command(
    body: Mapping[str, Any],
    assignments: Mapping[str, str],
    *,
    output_dir: Path,
    checkpoint_dir: Path,
    python: str = sys.executable,
) -> list[str]:
    """The argv a local trial runs.

    Args:
        body: a validated Experiment CR body.
        assignments: search parameter name to its value as a string.
        output_dir: replaces the value of ``--output-dir`` in the command.
        checkpoint_dir: replaces the value of ``--checkpoint-dir`` if the command has one.
        python: replaces a leading ``python``/``python3`` (the image's interpreter).

    Returns:
        The substituted ``command`` + ``args``.
    """
    from kaizen.tuning.spec import substitute_trial_parameters

    argv = substitute_trial_parameters(body, dict(assignments))
    if argv and _PYTHON.fullmatch(argv[0]):
        argv[0] = python
    _rewrite_flag(argv, "--output-dir", str(output_dir))
    _rewrite_flag(argv, "--checkpoint-dir", str(checkpoint_dir))
    return argv


class MetricParser:
    """Reads metric reports from trial output lines, as Katib's StdOut collector does.

    Args:
        metric_names: the metrics of interest (objective first, then additional ones).
        formats: regular expressions whose group 1 is a name and group 2 a value.
    """

    def __init__(self, metric_names: Sequence[str], formats: Sequence[str]) -> None:
        self.metric_names = tuple(metric_names)
        self.patterns = [re.compile(pattern) for pattern in formats]

    def parse(self, line: str) -> tuple[int | None, dict[str, float]]:
        """Return ``(epoch or None, {metric: value})`` for one line; values that do not parse
        as numbers (the filter also matches ``name=`` with an empty value) are skipped."""
        metrics: dict[str, float] = {}
        epoch: int | None = None
        for pattern in self.patterns:
            for match in pattern.finditer(line):
                name, text = match.group(1).strip(), match.group(2).strip()
                try:
                    value = float(text)
                except ValueError:
                    continue
                if name in self.metric_names:
                    metrics[name] = value
                elif name == STEP_METRIC and value.is_integer():
                    epoch = int(value)
        return epoch, metrics


@dataclass(frozen=True)
class MedianStop:
    """Settings of Katib's ``medianstop`` early stopping (Katib's defaults)."""

    min_trials_required: int = 3
    start_step: int = 4

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> MedianStop | None:
        """The body's medianstop settings, or None without ``spec.earlyStopping``.

        Raises:
            TuningConfigError: an early stopping algorithm other than medianstop.
        """
        early = body["spec"].get("earlyStopping")
        if not early:
            return None
        name = early.get("algorithmName")
        if name != "medianstop":
            raise TuningConfigError(
                f"spec.earlyStopping.algorithmName {name!r} is not supported by the local "
                "executor; supported: medianstop"
            )
        values = {item["name"]: int(item["value"]) for item in early.get("algorithmSettings") or []}
        return cls(
            min_trials_required=values.get("min_trials_required", cls.min_trials_required),
            start_step=values.get("start_step", cls.start_step),
        )


def _objective_reports(trial: TrialRecord, objective: str) -> list[tuple[int, float]]:
    return [(step, report[objective]) for step, report in trial.intermediate if objective in report]


def median_stop_message(
    trial: TrialRecord,
    succeeded: Sequence[TrialRecord],
    *,
    objective: str,
    goal_type: GoalType,
    rule: MedianStop,
) -> str | None:
    """Decide whether the median stopping rule stops a running trial.

    Args:
        trial: the running trial, with its reports so far.
        succeeded: the experiment's Succeeded trials.
        objective: the objective metric name.
        goal_type: maximize or minimize.
        rule: the medianstop settings.

    Returns:
        Why the trial is stopped, or None to let it run.
    """
    reports = _objective_reports(trial, objective)
    if not reports:
        return None
    step = reports[-1][0]
    if step < rule.start_step:
        return None
    averages = []
    for other in succeeded:
        values = [
            value
            for other_step, value in _objective_reports(other, objective)
            if other_step <= step
        ]
        if values:
            averages.append(sum(values) / len(values))
    if len(averages) < rule.min_trials_required:
        return None
    median = statistics.median(averages)
    values = [value for _, value in reports]
    best = max(values) if goal_type == "maximize" else min(values)
    worse = best < median if goal_type == "maximize" else best > median
    if not worse:
        return None
    relation = "below" if goal_type == "maximize" else "above"
    return (
        f"medianstop: best {objective} {best:.6g} by step {step} is {relation} the median "
        f"{median:.6g} of {len(averages)} succeeded trials' running averages up to step {step}"
    )


def load_result(work_dir: str | os.PathLike[str]) -> ExperimentResult:
    """Read the result recorded in ``work_dir/experiment.json`` (also while it runs).

    Raises:
        FileNotFoundError: no experiment was run in ``work_dir``.
        ValueError: the file is not an experiment record.
    """
    path = Path(work_dir) / EXPERIMENT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no experiment recorded in {work_dir}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON: {error}") from None
    return ExperimentResult.from_dict(data)


@contextmanager
def _exclusive(work_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on work_dir; the kernel releases it if the process dies."""
    try:
        descriptor = acquire_file_lock(work_dir / LOCK_FILE, 0, record_pid=True)
    except LockTimeoutError as busy:
        raise ExecutorBusyError(
            f"{work_dir}: another executor (pid {busy.holder or 'unknown'}) is running this "
            "experiment; wait for it or use another work_dir"
        ) from None
    try:
        yield
    finally:
        release_file_lock(descriptor)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _kill_orphan(pid: int | None, trial_dir: Path) -> None:
    """Kill a trial process left by a dead executor, if ``pid`` still is that trial.

    The trial's environment carries :data:`TRIAL_DIR_ENV`; a reused pid does not.
    """
    if not pid:
        return
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return
    if f"{TRIAL_DIR_ENV}={trial_dir}".encode() not in environ:
        return
    _signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(_POLL_S)


# ------------------------------------------------------------------------------ runner


@dataclass
class _Active:
    """A trial process this executor started."""

    record: TrialRecord
    process: subprocess.Popen[str]
    reader: threading.Thread
    started: float
    stop_status: TrialStatus | None = None
    stop_message: str = ""
    kill_deadline: float | None = None


@dataclass
class _Budget:
    max_trials: int
    parallel: int
    max_failed: int | None


@dataclass
class _State:
    records: list[TrialRecord] = field(default_factory=list)
    executor: dict[str, dict[str, Any]] = field(default_factory=dict)


class _Experiment:
    def __init__(
        self,
        body: dict[str, Any],
        work_dir: Path,
        budget: _Budget,
        python: str,
        on_trial: Callable[[TrialRecord], None] | None,
        timeout_s: float | None,
        kill_grace_s: float,
    ) -> None:
        from kaizen.tuning.spec import metrics_formats

        self.body = body
        self.work_dir = work_dir
        self.budget = budget
        self.python = python
        self.on_trial = on_trial
        self.timeout_s = timeout_s
        self.kill_grace_s = kill_grace_s
        self.name: str = body["metadata"]["name"]
        objective = body["spec"]["objective"]
        self.objective: str = objective["objectiveMetricName"]
        self.goal_type = cast(GoalType, objective["type"])
        self.goal: float | None = (
            None if objective.get("goal") is None else float(objective["goal"])
        )
        self.metric_names: list[str] = [
            self.objective,
            *(objective.get("additionalMetricNames") or []),
        ]
        self.strategy: MetricStrategy = metric_strategies(objective)[self.objective]
        self.parser = MetricParser(self.metric_names, metrics_formats(body))
        self.early_stop = MedianStop.from_body(body)
        self.algorithm = algorithm_name(body)
        self.seed = random_state(body)
        self.space: dict[str, SearchParameter] = search_space(body, grid=self.algorithm == "grid")
        self.hash = spec_hash(body)
        self.state = _State()
        self.active: dict[str, _Active] = {}
        self.pending: list[TrialRecord] = []
        self.events: queue.Queue[tuple[str, _Active, str | int]] = queue.Queue()
        # SIGKILL: a trial of a dead executor has no one to report to.
        self.preexec = parent_death_signal(signal.SIGKILL)
        self.study: Any = None

    # ----------------------------------------------------------------- persistence

    def distributions(self) -> dict[str, Any]:
        return {name: parameter.distribution for name, parameter in self.space.items()}

    def snapshot(self, status: ExperimentStatus, reason: str) -> ExperimentResult:
        optimal = build_optimal_trial(
            self.state.records,
            objective_metric=self.objective,
            goal_type=self.goal_type,
            metric_names=self.metric_names,
            strategy=self.strategy,
        )
        return ExperimentResult(
            name=self.name,
            status=status,
            reason=reason,
            trials=[copy.deepcopy(record) for record in self.state.records],
            optimal_trial=optimal,
            goal_reached=self.goal_trial() is not None,
        )

    def save(self, status: ExperimentStatus = "Running", reason: str = "") -> ExperimentResult:
        result = self.snapshot(status, reason or "ExperimentRunning: Experiment is running")
        payload = result.to_dict()
        payload["spec_sha256"] = self.hash
        payload["budget"] = {
            "maxTrialCount": self.budget.max_trials,
            "parallelTrialCount": self.budget.parallel,
            "maxFailedTrialCount": self.budget.max_failed,
        }
        payload["executor"] = {
            "random_state": self.seed,
            "algorithm": self.algorithm,
            "updated_at": utc_now(),
            "trials": self.state.executor,
        }
        payload["spec"] = self.body
        write_json_atomic(self.work_dir / EXPERIMENT_FILE, payload)
        return result

    def load(self) -> None:
        path = self.work_dir / EXPERIMENT_FILE
        if not path.exists():
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ExperimentMismatchError(
                f"{path}: not a readable experiment record: {error}"
            ) from None
        recorded = data.get("spec_sha256")
        if data.get("name") != self.name or recorded != self.hash:
            raise ExperimentMismatchError(
                f"{path} records experiment {data.get('name')!r} with spec sha256 "
                f"{str(recorded)[:12]}..., but this run is {self.name!r} with spec sha256 "
                f"{self.hash[:12]}...: the spec changed (only {', '.join(BUDGET_FIELDS)} may "
                "change between runs); use a new work_dir, or delete this one to start over"
            )
        self.state.records = ExperimentResult.from_dict(data).trials
        for record in self.state.records:
            # JSON is written with sorted keys; Katib lists assignments in spec order.
            order = [name for name in self.space if name in record.parameters]
            record.parameters = {name: record.parameters[name] for name in order}
        self.state.executor = dict((data.get("executor") or {}).get("trials") or {})

    def open_study(self) -> None:
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        journal = str(self.work_dir / JOURNAL_FILE)
        # Our flock makes this process the journal's only user, so a journal lock file that
        # exists now was left by a killed executor: remove it instead of waiting it out.
        Path(journal + ".lock").unlink(missing_ok=True)
        storage = JournalStorage(JournalFileBackend(journal, lock_obj=JournalFileOpenLock(journal)))
        max_for_sampler = max(self.budget.max_trials, len(self.state.records))
        sampler = build_sampler(self.body, self.space, max_trial_count=max_for_sampler)
        self.study = optuna.create_study(
            storage=storage,
            sampler=sampler,
            study_name=self.name,
            direction=self.goal_type,
            load_if_exists=True,
        )

    # ------------------------------------------------------------------ resume

    def reconcile(self) -> None:
        """Bring records and the study in line after a previous run (or none)."""
        from optuna.trial import TrialState

        by_number = {trial.number: trial for trial in self.study.get_trials(deepcopy=False)}
        known: set[int] = set()
        for record in self.state.records:
            meta = self.state.executor.setdefault(record.name, {})
            number = meta.get("optuna_number")
            if number is not None:
                known.add(int(number))
            optuna_trial = by_number.get(int(number)) if number is not None else None
            if record.finished:
                if optuna_trial is not None and optuna_trial.state == TrialState.RUNNING:
                    self.tell(record)  # the executor died between the record and the tell
                continue
            # Running when the executor died: rerun it from scratch, as Katib restarts a trial.
            _kill_orphan(meta.get("pid"), self.trial_dir(record.name))
            record.metrics, record.intermediate = {}, []
            record.started_at = record.finished_at = record.duration_s = None
            record.message = "rerun: the executor stopped while this trial was running"
            self.pending.append(record)
        for number, optuna_trial in sorted(by_number.items()):
            if number in known or optuna_trial.state != TrialState.RUNNING:
                continue
            # Asked but never recorded (the executor died in between, maybe before all its
            # parameters were sampled): finish sampling it and run it now.
            try:
                parameters = self.complete(optuna_trial)
            except (ValueError, KeyError, RuntimeError):
                # A trial the sampler cannot finish is dropped; it never ran.
                self.study.tell(number, state=TrialState.FAIL)
                continue
            record = self.new_record(parameters, number)
            record.message = "adopted: asked just before the executor stopped"
            self.pending.append(record)

    def complete(self, frozen: Any) -> dict[str, str]:
        """Sample the parameters a half-asked trial lacks (kept ones are returned as they are)."""
        import optuna

        trial = optuna.Trial(self.study, frozen._trial_id)
        values: dict[str, str] = {}
        for name, parameter in self.space.items():
            distribution = parameter.distribution
            value: Any
            if isinstance(distribution, optuna.distributions.CategoricalDistribution):
                value = trial.suggest_categorical(name, distribution.choices)
            elif isinstance(distribution, optuna.distributions.IntDistribution):
                value = trial.suggest_int(
                    name,
                    distribution.low,
                    distribution.high,
                    step=distribution.step,
                    log=distribution.log,
                )
            else:
                value = trial.suggest_float(
                    name,
                    distribution.low,
                    distribution.high,
                    step=distribution.step,
                    log=distribution.log,
                )
            values[name] = parameter.format(value)
        return values

    # ------------------------------------------------------------------ trials

    def trial_dir(self, name: str) -> Path:
        return self.work_dir / TRIALS_DIR / name

    def new_record(self, parameters: dict[str, str], number: int) -> TrialRecord:
        taken = {record.name for record in self.state.records}
        index = len(self.state.records)
        name = trial_name(self.name, self.seed, index)
        salt = 0
        while name in taken:
            salt += 1
            name = trial_name(self.name, self.seed + salt * 1_000_003, index)
        record = TrialRecord(name=name, parameters=parameters, status="Running")
        self.state.records.append(record)
        self.state.executor[name] = {"optuna_number": number, "attempts": 0}
        return record

    def ask(self) -> TrialRecord:
        optuna_trial = self.study.ask(fixed_distributions=self.distributions())
        parameters = {
            name: self.space[name].format(optuna_trial.params[name]) for name in self.space
        }
        record = self.new_record(parameters, optuna_trial.number)
        self.save()
        return record

    def launch(self, record: TrialRecord) -> None:
        directory = self.trial_dir(record.name)
        output_dir, checkpoint_dir = directory / "output", directory / "checkpoints"
        # A rerun starts clean: the interrupted attempt's output is partial. Checkpoints are
        # kept, so a trial program that resumes from them does.
        shutil.rmtree(output_dir, ignore_errors=True)
        directory.mkdir(parents=True, exist_ok=True)
        argv = build_trial_command(
            self.body,
            record.parameters,
            output_dir=output_dir,
            checkpoint_dir=checkpoint_dir,
            python=self.python,
        )
        meta = self.state.executor[record.name]
        meta["attempts"] = int(meta.get("attempts", 0)) + 1
        meta["command"] = argv
        meta["log"] = str(directory / TRIAL_LOG)
        record.status = "Running"
        record.started_at = utc_now()
        log = open(directory / TRIAL_LOG, "a", encoding="utf-8")  # noqa: SIM115 (reader closes)
        log.write(f"# kaizen: attempt {meta['attempts']} started at {record.started_at}: {argv}\n")
        log.flush()
        env = dict(os.environ, PYTHONUNBUFFERED="1", **{TRIAL_DIR_ENV: str(directory)})
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
                env=env,
                start_new_session=True,
                preexec_fn=self.preexec,
            )
        except OSError as error:
            log.write(f"# kaizen: cannot start the trial: {error}\n")
            log.close()
            record.status = "Failed"
            record.finished_at = utc_now()
            record.duration_s = 0.0
            record.message = f"cannot start {argv[0]!r}: {error.strerror or error}"
            self.save()
            self.tell(record)
            self.notify(record)
            return
        meta["pid"] = process.pid
        active = _Active(record, process, threading.Thread(), time.monotonic())
        active.reader = threading.Thread(
            target=self._pump, args=(active, log), name=f"trial-{record.name}", daemon=True
        )
        self.active[record.name] = active
        active.reader.start()
        self.save()
        self.notify(record)

    def _pump(self, active: _Active, log: IO[str]) -> None:
        stream = active.process.stdout
        assert stream is not None
        with log:
            for line in stream:
                log.write(line)
                log.flush()
                self.events.put(("line", active, line))
            returncode = active.process.wait()
            log.write(f"# kaizen: exit code {returncode}\n")
        self.events.put(("exit", active, returncode))

    def on_line(self, active: _Active, line: str) -> bool:
        if active.stop_status is not None:
            return False  # decided to stop: its record keeps what it had reached
        epoch, metrics = self.parser.parse(line)
        if not metrics:
            return False
        record = active.record
        if self.objective in metrics:
            reports = len(_objective_reports(record, self.objective)) + 1
        else:
            reports = len(_objective_reports(record, self.objective))
        step = epoch if epoch is not None else reports
        record.intermediate.append((step, metrics))
        record.metrics.update(metrics)
        if self.early_stop is not None and self.objective in metrics:
            succeeded = [r for r in self.state.records if r.status == "Succeeded"]
            message = median_stop_message(
                record,
                succeeded,
                objective=self.objective,
                goal_type=self.goal_type,
                rule=self.early_stop,
            )
            if message is not None:
                self.stop(active, "EarlyStopped", message)
        return True

    def stop(self, active: _Active, status: TrialStatus, message: str) -> None:
        if active.stop_status is not None:
            return
        active.stop_status, active.stop_message = status, message
        active.kill_deadline = time.monotonic() + self.kill_grace_s
        _signal_group(active.process.pid, signal.SIGTERM)

    def on_exit(self, active: _Active, returncode: int) -> None:
        active.reader.join()
        record = active.record
        del self.active[record.name]
        record.finished_at = utc_now()
        record.duration_s = round(time.monotonic() - active.started, 3)
        if active.stop_status is not None:
            record.status, record.message = active.stop_status, active.stop_message
        elif returncode != 0:
            record.status = "Failed"
            how = f"killed by signal {-returncode}" if returncode < 0 else f"exit code {returncode}"
            record.message = (
                f"trial process failed ({how}); see {self.state.executor[record.name]['log']}"
            )
        elif self.objective not in record.metrics:
            record.status = "Failed"
            record.message = (
                f"metrics unavailable: the trial printed no {self.objective} (objective) line; "
                f"see {self.state.executor[record.name]['log']}"
            )
        else:
            record.status = "Succeeded"
            record.message = ""
        self.save()
        self.tell(record)
        self.notify(record)

    def tell(self, record: TrialRecord) -> None:
        from optuna.trial import TrialState

        number = self.state.executor[record.name]["optuna_number"]
        value = trial_objective_value(record, self.objective, self.strategy)
        if record.status in OBSERVED_STATUSES and value is not None:
            self.study.tell(number, value)
        else:
            self.study.tell(number, state=TrialState.FAIL)

    def notify(self, record: TrialRecord) -> None:
        if self.on_trial is not None:
            self.on_trial(copy.deepcopy(record))

    # ------------------------------------------------------------------ ending

    def goal_trial(self) -> tuple[TrialRecord, float] | None:
        if self.goal is None:
            return None
        for record in self.state.records:
            if record.status not in OBSERVED_STATUSES:
                continue
            value = trial_objective_value(record, self.objective, self.strategy)
            if value is None:
                continue
            if (value >= self.goal) if self.goal_type == "maximize" else (value <= self.goal):
                return record, value
        return None

    def end_condition(self) -> tuple[ExperimentStatus, str] | None:
        """Katib's order: goal reached, too many failures, budget spent."""
        reached = self.goal_trial()
        if reached is not None:
            record, value = reached
            relation = ">=" if self.goal_type == "maximize" else "<="
            return "Succeeded", (
                f"ExperimentGoalReached: trial {record.name} reached {self.objective} "
                f"{value:.6g} {relation} goal {self.goal:g}"
            )
        failed = sum(1 for record in self.state.records if record.status == "Failed")
        if self.budget.max_failed is not None and failed > self.budget.max_failed:
            return "Failed", (
                f"ExperimentFailed: {failed} trials failed, more than maxFailedTrialCount "
                f"({self.budget.max_failed})"
            )
        completed = sum(1 for record in self.state.records if record.finished)
        if completed >= self.budget.max_trials:
            return "Succeeded", (
                f"ExperimentMaxTrialsReached: {completed} trials completed "
                f"(maxTrialCount {self.budget.max_trials})"
            )
        return None

    # ------------------------------------------------------------------ main loop

    def run(self) -> ExperimentResult:
        self.load()
        self.open_study()
        self.reconcile()
        self.save()
        started = time.monotonic()
        try:
            return self._loop(started)
        finally:
            self._abort_active()

    def _loop(self, started: float) -> ExperimentResult:
        ended: tuple[ExperimentStatus, str] | None = None
        while True:
            if ended is None:
                ended = self.end_condition()
                if ended is None:
                    ended = self.timeout_condition(started)
                if ended is not None:
                    for active in list(self.active.values()):
                        self.stop(active, "Killed", f"killed: the experiment ended ({ended[1]})")
            if ended is None:
                while len(self.active) < self.budget.parallel:
                    if self.pending:
                        self.launch(self.pending.pop(0))
                    elif len(self.state.records) < self.budget.max_trials:
                        self.launch(self.ask())
                    else:
                        break
            if not self.active:
                if ended is not None:
                    return self._finish(*ended)
                if not self.pending and len(self.state.records) >= self.budget.max_trials:
                    # Nothing runs and nothing is left to start: the budget is spent.
                    ended = self.end_condition()
                    assert ended is not None
                    continue
            self._drain_events()
            now = time.monotonic()
            for active in self.active.values():
                if active.kill_deadline is not None and now > active.kill_deadline:
                    _signal_group(active.process.pid, signal.SIGKILL)
                    active.kill_deadline = None

    def timeout_condition(self, started: float) -> tuple[ExperimentStatus, str] | None:
        if self.timeout_s is None or time.monotonic() - started <= self.timeout_s:
            return None
        completed = sum(1 for record in self.state.records if record.finished)
        return "Failed", (
            f"ExperimentTimeout: stopped after timeout_s={self.timeout_s:g} s with {completed} "
            f"of {self.budget.max_trials} trials completed; rerun with the same work_dir to "
            "continue"
        )

    def _finish(self, status: ExperimentStatus, reason: str) -> ExperimentResult:
        # Reruns that never got to start when the experiment ended are Killed, like the
        # trials Katib kills when an experiment completes.
        unstarted, self.pending = self.pending, []
        for record in unstarted:
            record.status, record.finished_at = "Killed", utc_now()
            record.message = f"killed before it restarted: the experiment ended ({reason})"
        result = self.save(status, reason)
        for record in unstarted:
            self.tell(record)
        return result

    def _drain_events(self) -> None:
        try:
            kind, active, payload = self.events.get(timeout=_POLL_S)
        except queue.Empty:
            return
        changed: set[str] = set()
        while True:
            if kind == "line":
                if self.on_line(active, cast(str, payload)):
                    changed.add(active.record.name)
            else:
                changed.discard(active.record.name)
                self.on_exit(active, cast(int, payload))
            try:
                kind, active, payload = self.events.get_nowait()
            except queue.Empty:
                break
        changed &= set(self.active)
        if changed:
            self.save()
            for name in changed:
                self.notify(self.active[name].record)

    def _abort_active(self) -> None:
        """On an error or interrupt: leave no trial process behind (records stay Running)."""
        for active in list(self.active.values()):
            _signal_group(active.process.pid, signal.SIGKILL)
        for active in list(self.active.values()):
            with suppress(subprocess.TimeoutExpired):
                active.process.wait(timeout=10)
            active.reader.join(timeout=5)
        if self.active:
            self.active.clear()
            self.save("Running", "ExperimentInterrupted: the executor stopped; rerun to resume")


def run_experiment(
    body: Mapping[str, Any],
    *,
    work_dir: str | os.PathLike[str],
    max_trial_count: int | None = None,
    parallel_trial_count: int | None = None,
    max_failed_trial_count: int | None = None,
    python: str = sys.executable,
    on_trial: Callable[[TrialRecord], None] | None = None,
    timeout_s: float | None = None,
    kill_grace_s: float = DEFAULT_KILL_GRACE_S,
) -> ExperimentResult:
    """Run a Katib Experiment CR body locally with Optuna (see the module docstring).

    Args:
        body: the Experiment CR body (camelCase dict, as in ``katib/*.yaml``); validated with
            :func:`kaizen.tuning.spec.validate_experiment`. Not modified.
        work_dir: where the records, the Optuna journal and every trial's log and output go;
            rerunning with the same folder resumes.
        max_trial_count: overrides ``spec.maxTrialCount``.
        parallel_trial_count: overrides ``spec.parallelTrialCount`` (capped at the trial
            budget).
        max_failed_trial_count: overrides ``spec.maxFailedTrialCount``.
        python: the interpreter that replaces a leading ``python``/``python3`` in the command.
        on_trial: called with a copy of a trial's record whenever it starts, reports metrics
            or ends.
        timeout_s: wall-time limit of this call; when hit, running trials are killed and a
            Failed result says so (rerun to continue).
        kill_grace_s: seconds between SIGTERM and SIGKILL when a trial is stopped.

    Returns:
        The finished experiment (status Succeeded or Failed, never Running).

    Raises:
        kaizen.tuning.spec.ExperimentSpecError: the body is not a valid Experiment.
        TuningConfigError: the experiment needs something the local executor cannot run (an
            unsupported algorithm or distribution, an invalid override).
        ExperimentMismatchError: ``work_dir`` holds another experiment's records.
        ExecutorBusyError: another executor is running in ``work_dir``.
    """
    from kaizen.tuning.spec import validate_experiment

    validated = copy.deepcopy(dict(body))
    validate_experiment(validated, f"experiment {validated.get('metadata', {}).get('name')!r}")
    spec = validated["spec"]
    overrides = {
        "max_trial_count": (max_trial_count, 1),
        "parallel_trial_count": (parallel_trial_count, 1),
        "max_failed_trial_count": (max_failed_trial_count, 0),
    }
    for label, (value, least) in overrides.items():
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < least
        ):
            raise TuningConfigError(f"{label} must be an integer >= {least}, got {value!r}")
    max_trials = max_trial_count if max_trial_count is not None else int(spec["maxTrialCount"])
    parallel = (
        parallel_trial_count
        if parallel_trial_count is not None
        else int(spec["parallelTrialCount"])
    )
    max_failed = (
        max_failed_trial_count
        if max_failed_trial_count is not None
        else spec.get("maxFailedTrialCount")
    )
    budget = _Budget(
        max_trials=max_trials,
        parallel=min(parallel, max_trials),
        max_failed=None if max_failed is None else int(max_failed),
    )
    if kill_grace_s < 0:
        raise TuningConfigError(f"kill_grace_s must be >= 0, got {kill_grace_s}")
    directory = Path(work_dir)
    # Built before anything is written, so a config error leaves no trace in work_dir.
    experiment = _Experiment(
        validated, directory, budget, python, on_trial, timeout_s, kill_grace_s
    )
    directory.mkdir(parents=True, exist_ok=True)
    with _exclusive(directory):
        return experiment.run()
