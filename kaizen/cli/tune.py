"""``kaizen tune``: a Katib Experiment run locally, with a live table of its trials."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from kaizen.cli._app import app, console, fail, load_settings_or_exit
from kaizen.tuning.result import ExperimentResult, TrialRecord, short_value

if TYPE_CHECKING:
    from kaizen.platform.settings import Settings

STATUS_STYLE = {
    "Running": "cyan",
    "Succeeded": "green",
    "EarlyStopped": "yellow",
    "Killed": "magenta",
    "Failed": "red",
}


def prepare_default_data(settings: Settings, rows: int = 20_000, seed: int = 42) -> dict[str, Path]:
    """Synthetic transactions -> Feast features -> train/validation Parquet, for tuning.

    Runs the pipeline's own ingest and feature steps under ``settings.home``; reuses what an
    earlier call prepared for the same rows and seed.
    """
    from kaizen.platform.fileio import write_json_atomic
    from kaizen.steps import features_step, ingest_step

    data_dir = settings.home / "tuning" / "data" / f"rows{rows}-seed{seed}"
    paths = {
        "train": data_dir / "train.parquet",
        "validation": data_dir / "validation.parquet",
        "features": data_dir / "features.json",
    }
    if all(path.exists() for path in paths.values()):
        return paths
    data_dir.mkdir(parents=True, exist_ok=True)
    ingest_step("", data_dir / "transactions.parquet", settings=settings, rows=rows, seed=seed)
    manifest_path = data_dir / "manifest.json"
    features_step(
        data_dir / "transactions.parquet",
        settings.feature_repo.absolute(),
        settings=settings,
        train_path=paths["train"],
        validation_path=paths["validation"],
        test_path=data_dir / "test.parquet",
        manifest_path=manifest_path,
    )
    manifest = json.loads(manifest_path.read_text())
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


@app.command()
def tune(
    experiment: Annotated[Path, typer.Option(help="Katib Experiment YAML.")] = Path(
        "katib/fraud-mlp-tpe.yaml"
    ),
    max_trials: Annotated[
        int | None, typer.Option("--max-trials", help="Trial budget (default: the Experiment's).")
    ] = None,
    parallel: Annotated[
        int | None, typer.Option("--parallel", help="Trials at once (default: the Experiment's).")
    ] = None,
    train_data: Annotated[
        Path | None, typer.Option(help="Training Parquet (default: synthetic data, prepared once).")
    ] = None,
    validation_data: Annotated[Path | None, typer.Option(help="Validation Parquet.")] = None,
    features_file: Annotated[
        Path | None, typer.Option(help="JSON list of feature columns.")
    ] = None,
    rows: Annotated[int, typer.Option(help="Synthetic rows when no data is given.")] = 20000,
    fresh: Annotated[
        bool, typer.Option(help="Start over instead of resuming this Experiment's trials.")
    ] = False,
) -> None:
    """Run a Katib Experiment locally (Optuna) with a live table of trials.

    Rerunning the same Experiment resumes it: finished trials are kept, not rerun.
    """
    import shutil

    from rich.live import Live

    from kaizen.tuning.local import run_experiment
    from kaizen.tuning.spec import (
        ExperimentSpecError,
        apply_overrides,
        load_experiment,
        search_parameters,
    )

    settings = load_settings_or_exit()
    given = [train_data, validation_data, features_file]
    if any(given) and not all(given):
        raise typer.BadParameter(
            "give all of --train-data, --validation-data and --features-file, or none",
            param_hint="--train-data",
        )
    try:
        body = load_experiment(experiment)
    except (ExperimentSpecError, OSError) as error:
        fail(error, 2)
    if train_data and validation_data and features_file:
        paths = {"train": train_data, "validation": validation_data, "features": features_file}
    else:
        console.print(f"preparing synthetic training data ({rows} rows) …")
        settings.logs_dir.mkdir(parents=True, exist_ok=True)
        # Feast prints its apply/materialize progress; it belongs in a log, not in the table.
        with (
            open(settings.logs_dir / "tune-data.log", "a", encoding="utf-8") as log,
            contextlib.redirect_stdout(log),
        ):
            paths = prepare_default_data(settings, rows=rows)
    try:
        body = apply_overrides(
            body,
            train_data=str(Path(paths["train"]).absolute()),
            validation_data=str(Path(paths["validation"]).absolute()),
            features_file=str(Path(paths["features"]).absolute()),
            max_trial_count=max_trials,
            parallel_trial_count=parallel,
        )
    except ExperimentSpecError as error:
        fail(error, 2)
    name = body["metadata"]["name"]
    work_dir = settings.home / "tuning" / name
    if fresh and work_dir.exists():
        shutil.rmtree(work_dir)
    objective = body["spec"]["objective"]["objectiveMetricName"]
    parameter_names = [space.name for space in search_parameters(body)]
    trials: dict[str, TrialRecord] = {}
    spec = body["spec"]
    title = (
        f"{name}: {spec['algorithm']['algorithmName']}, budget {spec['maxTrialCount']}, "
        f"{spec['parallelTrialCount']} at once"
    )
    with Live(trial_table(trials, parameter_names, objective, title), console=console) as live:

        def update(record: TrialRecord) -> None:
            trials[record.name] = record
            live.update(trial_table(trials, parameter_names, objective, title))

        result = run_experiment(body, work_dir=work_dir, on_trial=update)
        for record in result.trials:
            trials[record.name] = record
        live.update(trial_table(trials, parameter_names, objective, title))
    console.print()
    console.print(f"experiment {result.status}" + (f": {result.reason}" if result.reason else ""))
    for line in best_trial_lines(result, objective):
        console.print(escape(line))
    console.print(f"trials and logs: {work_dir}")
    if result.status != "Succeeded" or not result.optimal_trial:
        raise typer.Exit(1)
