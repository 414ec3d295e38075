"""The end-of-run summary: rows, features, metrics, gate decision, where things are."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kaizen.evaluation.metrics import HEADLINE_METRICS
from kaizen.pipeline.runner import RunResult
from kaizen.tuning.result import short_value


@dataclass
class RunSummary:
    """Everything a person wants to know after ``kaizen run``, also as a dict for tests/JSON."""

    run_id: str
    state: str
    seconds: float
    data: dict[str, Any] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)
    tuning: list[dict[str, Any]] = field(default_factory=list)
    rounds: int = 0
    registered: dict[str, Any] = field(default_factory=dict)
    report: str | None = None
    notification: dict[str, Any] = field(default_factory=dict)
    log_path: str = ""
    error: str | None = None

    def rows(self) -> list[tuple[str, str]]:
        out = [("state", self.state), ("duration", f"{self.seconds:.0f}s")]
        if self.data:
            out.append(
                ("data", f"{self.data.get('rows', '?')} rows from {self.data.get('source', '?')}")
            )
            if "start" in self.data:
                out.append(("time range", f"{self.data['start']} .. {self.data.get('end', '?')}"))
        if self.features:
            names = self.features.get("feature_names", [])
            out.append(
                (
                    "features",
                    f"{len(names)} from service {self.features.get('feature_service', '?')}",
                )
            )
            split_rows = self.features.get("rows", {})
            windows = self.features.get("windows", {})
            splits = [
                f"{name} {split_rows[name]} rows{_window(windows.get(name))}"
                for name in ("train", "validation", "test")
                if name in split_rows
            ]
            if splits:
                out.append(("splits", ", ".join(splits)))
        for index, search in enumerate(self.tuning):
            trials = search.get("trials", [])
            statuses: dict[str, int] = {}
            for trial in trials:
                statuses[trial["status"]] = statuses.get(trial["status"], 0) + 1
            counts = ", ".join(f"{count} {status.lower()}" for status, count in statuses.items())
            best = search.get("optimal_trial") or {}
            metrics = {
                metric["name"]: metric["latest"]
                for metric in best.get("observation", {}).get("metrics", [])
            }
            label = "tuning" if index == 0 else f"re-tune {index}"
            out.append((label, f"{search.get('name', '?')}: {len(trials)} trials ({counts})"))
            if best:
                params = ", ".join(
                    f"{item['name']}={short_value(item['value'])}"
                    for item in best.get("parameterAssignments", [])
                )
                objective = metrics.get("val_roc_auc")
                out.append(
                    (
                        "",
                        f"best {best.get('bestTrialName', '?')}: {params}"
                        + (f" (val_roc_auc {float(objective):.3f})" if objective else ""),
                    )
                )
        if self.training:
            out.append(
                (
                    "training",
                    f"{self.training.get('epochs_run', '?')} epochs, "
                    f"best epoch {self.training.get('best_epoch', '?')}",
                )
            )
        if self.metrics:
            out.append(
                (
                    "test metrics",
                    "  ".join(
                        f"{name} {self.metrics[name]:.3f}"
                        for name in HEADLINE_METRICS
                        if name in self.metrics
                    ),
                )
            )
        if self.gate:
            verdict = "PASS" if self.gate.get("passed") else "FAIL"
            if self.rounds > 1:
                verdict += f" (round {self.rounds - 1}, after {self.rounds - 1} re-tune(s))"
            out.append(("gate", verdict))
            for reason in self.gate.get("reasons", []):
                out.append(("", str(reason)))
        if self.registered:
            aliases = ", ".join(self.registered.get("aliases", [])) or "no alias"
            out.append(
                (
                    "registered",
                    f"{self.registered.get('name', '?')} v{self.registered.get('version', '?')}"
                    f" ({aliases})",
                )
            )
            if self.registered.get("existing"):
                out.append(("", "this run had registered this model already; nothing duplicated"))
        elif self.gate:
            out.append(
                ("registered", "nothing (gate failed)" if not self.gate.get("passed") else "?")
            )
        if self.report:
            out.append(("report", self.report))
        if self.notification:
            delivered = self.notification.get("delivered")
            webhook = self.notification.get("webhook")
            out.append(
                (
                    "notify",
                    f"{'sent to ' + str(webhook) if delivered else 'logged'}"
                    + (
                        f" (webhook error: {self.notification.get('error')})"
                        if self.notification.get("error")
                        else ""
                    ),
                )
            )
        out.append(("log", self.log_path))
        return out


def _window(window: object) -> str:
    """`` (start..end)`` in days for a split window, or nothing."""
    if not isinstance(window, dict):
        return ""
    start, end = window.get("start"), window.get("end")
    return f" ({str(start)[:10]}..{str(end)[:10]})" if start and end else ""


def latest_round_task(result: RunResult, base: str) -> tuple[str, int]:
    """The task of the last round that ran: ``base``, ``base-2``, ``base-3`` ...; and the count."""
    count = 0
    name = base
    while result.task_dir(base if count == 0 else f"{base}-{count + 1}") is not None:
        name = base if count == 0 else f"{base}-{count + 1}"
        count += 1
    return name, count


def summarize_run(result: RunResult, reports_dir: Path | None = None) -> RunSummary:
    """Read the run's artifacts into a summary; missing parts (failed steps) are left out.

    Args:
        result: the finished run.
        reports_dir: if given, the HTML report is copied there as ``run-<id>.html`` so a
            browser opens it by its extension.
    """
    summary = RunSummary(
        run_id=result.run_id,
        state=result.state,
        seconds=result.seconds,
        log_path=str(result.log_path),
        error=result.error,
    )
    ingest = result.executor_output("ingest-data")
    artifacts = ingest.get("artifacts", {}).get("transactions", {}).get("artifacts", [])
    if artifacts:
        summary.data = dict(artifacts[0].get("metadata", {}))
    summary.features = result.json_artifact("build-features", "feature_manifest") or {}
    train_task, summary.rounds = latest_round_task(result, "train-model")
    model_dir = result.artifact(train_task, "model")
    if model_dir is not None and (model_dir / "metadata.json").is_file():
        summary.training = json.loads((model_dir / "metadata.json").read_text())
    evaluate_task, _ = latest_round_task(result, "evaluate-model")
    evaluation = result.json_artifact(evaluate_task, "evaluation") or {}
    metrics = evaluation.get("metrics", {})
    summary.metrics = {
        name: float(metrics[name])
        for name in HEADLINE_METRICS
        if isinstance(metrics.get(name), int | float)
    }
    gate_task, _ = latest_round_task(result, "gate-model")
    summary.gate = result.json_artifact(gate_task, "decision") or {}
    register_task, registered_rounds = latest_round_task(result, "register-model")
    if registered_rounds:
        summary.registered = result.json_artifact(register_task, "registered") or {}
    _, tune_rounds = latest_round_task(result, "tune-model")
    for index in range(tune_rounds):
        search = result.json_artifact(
            "tune-model" if index == 0 else f"tune-model-{index + 1}", "tuning_result"
        )
        if search:
            summary.tuning.append(search.get("experiment", {}))
    report = result.artifact(evaluate_task, "report")
    if report is not None and reports_dir is not None:
        reports_dir.mkdir(parents=True, exist_ok=True)
        target = reports_dir / f"run-{result.run_id}.html"
        shutil.copyfile(report, target)
        report = target
    summary.report = str(report) if report else None
    summary.notification = (
        result.json_artifact("notify-run", "notification")
        or result.json_artifact("notify", "notification")
        or {}
    )
    return summary
