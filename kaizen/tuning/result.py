"""Result types shared by both tuning backends (local Optuna executor, Katib on a cluster).

Both backends return an :class:`ExperimentResult`; its ``optimal_trial`` is a plain dict in the
exact shape of Katib's ``status.currentOptimalTrial``::

    {"bestTrialName": "fraud-mlp-tpe-x7k2m9qp",
     "parameterAssignments": [{"name": "learning_rate", "value": "0.003"}],
     "observation": {"metrics": [{"name": "val_roc_auc", "latest": "0.95",
                                  "max": "0.96", "min": "0.90"}]}}

Values inside it are strings, as in Katib; :meth:`ExperimentResult.best_parameters` gives the
parameter assignments as a ``{name: value}`` dict of strings.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

TrialStatus = Literal["Succeeded", "Failed", "EarlyStopped", "Running", "Killed"]
ExperimentStatus = Literal["Succeeded", "Failed", "Running"]
GoalType = Literal["maximize", "minimize"]
MetricStrategy = Literal["min", "max", "latest"]

TRIAL_STATUSES: tuple[str, ...] = ("Succeeded", "Failed", "EarlyStopped", "Running", "Killed")
# "Running" only appears in snapshots written while an experiment is in progress (the local
# executor's experiment.json); a finished experiment is Succeeded or Failed.
EXPERIMENT_STATUSES: tuple[str, ...] = ("Succeeded", "Failed", "Running")
#: Statuses of trials whose metrics count as observations (Katib counts early-stopped trials
#: as completed trials with the metrics they reached).
OBSERVED_STATUSES: tuple[str, ...] = ("Succeeded", "EarlyStopped")


def utc_now() -> str:
    """The current time as an RFC 3339 UTC string with milliseconds (Katib uses RFC 3339)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def format_metric_value(value: float) -> str:
    """Format a metric value the way it is stored in Katib status (a string, full precision)."""
    return repr(float(value))


@dataclass
class TrialRecord:
    """One trial of an experiment, as either backend saw it.

    Attributes:
        name: trial name (Katib style: ``<experiment-name>-<8 lowercase alphanumerics>``).
        parameters: the parameter assignments as strings, as passed to the trial.
        metrics: latest reported value per metric of interest (objective + additional ones).
        status: Succeeded, Failed, EarlyStopped, Running or Killed.
        started_at: RFC 3339 UTC start time, or None if unknown.
        finished_at: RFC 3339 UTC end time, or None while running / unknown.
        duration_s: wall time in seconds, or None while running / unknown.
        intermediate: every report in order, as ``(step, {metric: value})``; the step is the
            reported ``epoch`` when the line has one, else the count of objective reports.
        message: why the trial ended the way it did (exit code, early-stopping rule, ...).
    """

    name: str
    parameters: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)
    status: TrialStatus = "Running"
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    intermediate: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    message: str = ""

    def __post_init__(self) -> None:
        if self.status not in TRIAL_STATUSES:
            raise ValueError(
                f"trial {self.name!r}: status {self.status!r} is not one of {list(TRIAL_STATUSES)}"
            )

    @property
    def finished(self) -> bool:
        """True once the trial no longer runs (any status but Running)."""
        return self.status != "Running"

    def metric_values(self, metric: str) -> list[float]:
        """Every reported value of ``metric`` in order (empty if never reported)."""
        values = [report[metric] for _, report in self.intermediate if metric in report]
        if not values and metric in self.metrics:
            values = [self.metrics[metric]]
        return values

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (camelCase-free: these are our records, not Katib objects)."""
        return {
            "name": self.name,
            "parameters": dict(self.parameters),
            "metrics": dict(self.metrics),
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": self.duration_s,
            "intermediate": [[step, dict(report)] for step, report in self.intermediate],
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialRecord:
        """Rebuild a record written by :meth:`to_dict`.

        Raises:
            ValueError: a required field is missing or the status is unknown.
        """
        missing = [key for key in ("name", "parameters", "status") if key not in data]
        if missing:
            raise ValueError(f"trial record {dict(data)!r} misses field(s) {missing}")
        return cls(
            name=str(data["name"]),
            parameters={str(k): str(v) for k, v in dict(data["parameters"]).items()},
            metrics={str(k): float(v) for k, v in dict(data.get("metrics") or {}).items()},
            status=cast(TrialStatus, data["status"]),
            started_at=data.get("started_at"),
            finished_at=data.get("finished_at"),
            duration_s=None if data.get("duration_s") is None else float(data["duration_s"]),
            intermediate=[
                (int(step), {str(k): float(v) for k, v in dict(report).items()})
                for step, report in data.get("intermediate") or []
            ],
            message=str(data.get("message") or ""),
        )


@dataclass
class ExperimentResult:
    """The outcome of one experiment.

    Attributes:
        name: experiment name (``metadata.name``).
        status: Succeeded or Failed (Running only in an in-progress snapshot).
        reason: why the experiment ended (goal reached, budget spent, too many failures, ...).
        trials: every trial, in creation order.
        optimal_trial: Katib ``status.currentOptimalTrial`` shape, or None if no trial reported
            the objective.
        goal_reached: True when a trial reached ``spec.objective.goal``.
    """

    name: str
    status: ExperimentStatus
    reason: str
    trials: list[TrialRecord] = field(default_factory=list)
    optimal_trial: dict[str, Any] | None = None
    goal_reached: bool = False

    def __post_init__(self) -> None:
        if self.status not in EXPERIMENT_STATUSES:
            raise ValueError(
                f"experiment {self.name!r}: status {self.status!r} is not one of "
                f"{list(EXPERIMENT_STATUSES)}"
            )

    def best_parameters(self) -> dict[str, str]:
        """The optimal trial's parameter assignments as ``{name: value}`` (strings, as in Katib).

        Raises:
            LookupError: no trial reported the objective metric, so there is no optimal trial.
        """
        if not self.optimal_trial or not self.optimal_trial.get("bestTrialName"):
            raise LookupError(
                f"experiment {self.name!r} has no optimal trial ({self.status}: {self.reason})"
            )
        return {
            str(item["name"]): str(item["value"])
            for item in self.optimal_trial.get("parameterAssignments") or []
        }

    def best_trial(self) -> TrialRecord | None:
        """The record of the optimal trial, or None."""
        if not self.optimal_trial:
            return None
        wanted = self.optimal_trial.get("bestTrialName")
        return next((trial for trial in self.trials if trial.name == wanted), None)

    def trials_with_status(self, *statuses: str) -> list[TrialRecord]:
        """The trials whose status is one of ``statuses``."""
        return [trial for trial in self.trials if trial.status in statuses]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "goal_reached": self.goal_reached,
            "optimal_trial": self.optimal_trial,
            "trials": [trial.to_dict() for trial in self.trials],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExperimentResult:
        """Rebuild a result written by :meth:`to_dict`.

        Raises:
            ValueError: a required field is missing or a status is unknown.
        """
        missing = [key for key in ("name", "status") if key not in data]
        if missing:
            raise ValueError(f"experiment result misses field(s) {missing}")
        return cls(
            name=str(data["name"]),
            status=cast(ExperimentStatus, data["status"]),
            reason=str(data.get("reason") or ""),
            trials=[TrialRecord.from_dict(item) for item in data.get("trials") or []],
            optimal_trial=data.get("optimal_trial"),
            goal_reached=bool(data.get("goal_reached", False)),
        )


def default_metric_strategies(
    objective_metric: str, goal_type: GoalType, additional_metrics: Sequence[str] = ()
) -> dict[str, MetricStrategy]:
    """Katib's default ``objective.metricStrategies`` (its experiment defaulting webhook).

    Every metric without an explicit strategy, the objective and the additional ones alike,
    gets the goal type's strategy: ``max`` for maximize, ``min`` for minimize.
    """
    default: MetricStrategy = "max" if goal_type == "maximize" else "min"
    return dict.fromkeys([objective_metric, *additional_metrics], default)


def metric_strategies(objective: Mapping[str, Any]) -> dict[str, MetricStrategy]:
    """The effective strategies of a CR body's ``spec.objective``: explicit ones over defaults.

    Raises:
        ValueError: a strategy value is not min, max or latest.
    """
    strategies = default_metric_strategies(
        str(objective["objectiveMetricName"]),
        cast(GoalType, objective.get("type", "maximize")),
        [str(name) for name in objective.get("additionalMetricNames") or []],
    )
    for item in objective.get("metricStrategies") or []:
        value = item.get("value")
        if value not in ("min", "max", "latest"):
            raise ValueError(
                f"spec.objective.metricStrategies: strategy {value!r} of metric "
                f"{item.get('name')!r} is not one of ['min', 'max', 'latest']"
            )
        strategies[str(item["name"])] = cast(MetricStrategy, value)
    return strategies


def trial_objective_value(
    trial: TrialRecord, metric: str, strategy: MetricStrategy
) -> float | None:
    """The value Katib compares trials by: the metric's min, max or latest report."""
    values = [value for value in trial.metric_values(metric) if not math.isnan(value)]
    if not values:
        return None
    if strategy == "min":
        return min(values)
    if strategy == "max":
        return max(values)
    return trial.metrics.get(metric, values[-1])


def build_optimal_trial(
    trials: Iterable[TrialRecord],
    *,
    objective_metric: str,
    goal_type: GoalType,
    metric_names: Sequence[str],
    strategy: MetricStrategy | None = None,
) -> dict[str, Any] | None:
    """Pick the best observed trial and describe it as Katib's ``status.currentOptimalTrial``.

    Only Succeeded and EarlyStopped trials count (the trials Katib holds an observation for).
    Trials are compared by the objective's strategy value (Katib's ``getObjectiveMetricValue``);
    ties keep the earliest trial, as Katib replaces the optimum only on a strict improvement.

    Args:
        trials: trial records in creation order.
        objective_metric: ``spec.objective.objectiveMetricName``.
        goal_type: ``spec.objective.type``.
        metric_names: objective + additional metric names, in the order to report them.
        strategy: how to reduce the objective's reports to one value; defaults to Katib's
            default for the goal type (max for maximize, min for minimize).

    Returns:
        The ``currentOptimalTrial`` dict, or None when no counted trial reported the objective.
    """
    chosen = strategy or default_metric_strategies(objective_metric, goal_type)[objective_metric]
    best: TrialRecord | None = None
    best_value = 0.0
    for trial in trials:
        if trial.status not in OBSERVED_STATUSES:
            continue
        value = trial_objective_value(trial, objective_metric, chosen)
        if value is None:
            continue
        better = value > best_value if goal_type == "maximize" else value < best_value
        if best is None or better:
            best, best_value = trial, value
    if best is None:
        return None
    observations = []
    for metric in metric_names:
        values = best.metric_values(metric)
        if not values:
            continue
        latest = best.metrics.get(metric, values[-1])
        observations.append(
            {
                "name": metric,
                "latest": format_metric_value(latest),
                "max": format_metric_value(max(values)),
                "min": format_metric_value(min(values)),
            }
        )
    return {
        "bestTrialName": best.name,
        "parameterAssignments": [
            {"name": name, "value": value} for name, value in best.parameters.items()
        ],
        "observation": {"metrics": observations},
    }


def short_value(value: str) -> str:
    """A Katib parameter value as people read it: ``0.0012345678`` -> ``0.001235``."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() else f"{number:.4g}"
