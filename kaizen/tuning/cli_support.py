"""What ``kaizen tune`` needs beyond the executor: default data and the live trial table."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.table import Table

from kaizen.tuning.result import ExperimentResult, TrialRecord

STATUS_STYLE = {
    "Running": "cyan",
    "Succeeded": "green",
    "EarlyStopped": "yellow",
    "Killed": "magenta",
    "Failed": "red",
}


def prepare_default_data(
    kaizen_home: Path, feature_repo: Path, rows: int = 20_000, seed: int = 42
) -> dict[str, Path]:
    """Synthetic transactions -> Feast features -> train/validation Parquet, for tuning.

    Reuses what an earlier call prepared for the same rows and seed.
    """
    from kaizen.steps import features_step, ingest_step

    data_dir = kaizen_home / "tuning" / "data" / f"rows{rows}-seed{seed}"
    paths = {
        "train": data_dir / "train.parquet",
        "validation": data_dir / "validation.parquet",
        "features": data_dir / "features.json",
    }
    if all(path.exists() for path in paths.values()):
        return paths
    data_dir.mkdir(parents=True, exist_ok=True)
    ingest_step("", data_dir / "transactions.parquet", rows=rows, seed=seed)
    manifest_path = data_dir / "manifest.json"
    features_step(
        data_dir / "transactions.parquet",
        feature_repo,
        kaizen_home,
        train_path=paths["train"],
        validation_path=paths["validation"],
        test_path=data_dir / "test.parquet",
        manifest_path=manifest_path,
    )
    manifest = json.loads(manifest_path.read_text())
    from kaizen.platform.fileio import write_json_atomic

    write_json_atomic(paths["features"], list(manifest["feature_names"]))
    return paths


def trial_table(
    trials: Mapping[str, TrialRecord],
    parameter_names: list[str],
    objective: str,
    title: str,
) -> Table:
    """One row per trial: its parameters, latest objective, status and duration."""
    table = Table(title=title)
    table.add_column("trial")
    for name in parameter_names:
        table.add_column(name, justify="right")
    table.add_column(objective, justify="right")
    table.add_column("step", justify="right")
    table.add_column("status")
    table.add_column("time", justify="right")
    for record in trials.values():
        value = record.metrics.get(objective)
        step = record.intermediate[-1][0] if record.intermediate else ""
        style = STATUS_STYLE.get(record.status, "")
        table.add_row(
            record.name.rsplit("-", 1)[-1],
            *(short_value(record.parameters.get(name, "")) for name in parameter_names),
            f"{value:.4f}" if value is not None else "",
            str(step),
            f"[{style}]{record.status}[/{style}]" if style else record.status,
            f"{record.duration_s:.0f}s" if record.duration_s is not None else "",
        )
    return table


def short_value(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() else f"{number:.4g}"


def best_trial_lines(result: ExperimentResult, objective: str) -> list[str]:
    """The optimal trial, as people read it."""
    if not result.optimal_trial:
        return [f"no successful trial ({result.status}: {result.reason})"]
    best = result.optimal_trial
    metrics = {metric["name"]: metric["latest"] for metric in best["observation"]["metrics"]}
    params = ", ".join(
        f"{name}={short_value(value)}" for name, value in result.best_parameters().items()
    )
    lines = [
        f"best trial {best['bestTrialName']}: {objective} {float(metrics[objective]):.4f}",
        f"  {params}",
    ]
    others = [f"{name} {float(value):.4f}" for name, value in metrics.items() if name != objective]
    if others:
        lines.append("  " + ", ".join(others))
    return lines


def result_summary(result: ExperimentResult) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for trial in result.trials:
        counts[trial.status] = counts.get(trial.status, 0) + 1
    return {"status": result.status, "reason": result.reason, "trials": counts}
