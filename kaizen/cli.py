"""The ``kaizen`` command line."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kaizen.settings import Settings, SettingsError, load_settings

app = typer.Typer(
    help="Kaizen: continuous training and delivery on Kubeflow, from one pipeline definition.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        err_console.print("[red]error:[/red]", escape(str(error)))
        raise typer.Exit(2) from None


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise typer.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="--param")
        name, raw = pair.split("=", 1)
        value: Any = raw
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        parsed[name.strip()] = value
    return parsed


@app.command("compile")
def compile_command(
    output: Annotated[
        Path | None, typer.Option(help="Where to write the YAML (default: beside the pipeline).")
    ] = None,
    image_digest: Annotated[
        str | None, typer.Option(help="Pin every component image by this sha256:... digest.")
    ] = None,
) -> None:
    """Compile the training pipeline to YAML (the artifact that goes to the cluster)."""
    from kaizen.compiler import TRAINING_PIPELINE_YAML, CompileError, compile_pipeline

    try:
        path = compile_pipeline(output or TRAINING_PIPELINE_YAML, image_digest=image_digest)
    except CompileError as error:
        err_console.print("[red]error:[/red]", escape(str(error)))
        raise typer.Exit(2) from None
    console.print(f"compiled [bold]{path}[/bold]")


@app.command()
def run(
    source: Annotated[
        str,
        typer.Option(
            help="Your transactions (CSV/Parquet path or file:// URI); default: generate."
        ),
    ] = "",
    rows: Annotated[int | None, typer.Option(help="Synthetic transactions to generate.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for data and training.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Maximum training epochs.")] = None,
    drift: Annotated[
        float | None, typer.Option(help="Drift injected into synthetic data (0..1).")
    ] = None,
    webhook_url: Annotated[
        str | None, typer.Option(help="POST a JSON notification here when the run ends.")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Any pipeline parameter, NAME=VALUE.")
    ] = None,
    pipeline: Annotated[
        Path | None, typer.Option(help="Compiled pipeline YAML (default: the committed one).")
    ] = None,
) -> None:
    """Run the compiled training pipeline locally and print a summary."""
    from kaizen.compiler import TRAINING_PIPELINE_YAML
    from kaizen.runner import TaskEvent, run_pipeline
    from kaizen.summary import summarize_run

    settings = _settings()
    # Paths the task processes read are made absolute here, so they do not depend on the
    # directory a task runs in.
    arguments: dict[str, Any] = {
        "feature_repo": str(settings.feature_repo.absolute()),
        "experiment_spec": str(Path("katib/fraud-mlp-tpe.yaml").absolute()),
        "retune_experiment_spec": str(Path("katib/fraud-mlp-tpe-wide.yaml").absolute()),
    }
    if source:
        arguments["source_uri"] = source
    for name, value in (("rows", rows), ("seed", seed), ("epochs", epochs), ("drift", drift)):
        if value is not None:
            arguments[name] = value
    webhook = webhook_url if webhook_url is not None else settings.webhook_url
    if webhook:
        arguments["webhook_url"] = str(webhook)
    arguments.update(_parse_params(param or []))

    yaml_path = pipeline or TRAINING_PIPELINE_YAML
    console.print(f"[bold]kaizen run[/bold]: {yaml_path.name} on the embedded backend")

    # Task logs are redirected to the run's log file while it runs; progress is not.
    progress = Console(file=sys.stdout)

    def show(event: TaskEvent) -> None:
        if event.state == "RUNNING":
            progress.print(f"  [cyan]▶[/cyan] {event.task} …")
        elif event.state == "SUCCESS":
            progress.print(f"  [green]✔[/green] {event.task} ({event.seconds:.1f}s)")
        else:
            progress.print(f"  [red]✘[/red] {event.task} ({event.seconds:.1f}s)")

    result = run_pipeline(yaml_path, arguments, settings, on_event=show)
    summary = summarize_run(result, reports_dir=settings.home / "reports")
    table = Table(title=f"run {result.run_id}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    for label, text in summary.rows():
        table.add_row(label, text)
    console.print(table)
    if not result.succeeded:
        err_console.print("[red]run failed[/red]:", escape(result.error or ""))
        err_console.print(f"full log: {result.log_path}")
        raise typer.Exit(1)


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

    from kaizen.tuning.cli_support import best_trial_lines, prepare_default_data, trial_table
    from kaizen.tuning.local import run_experiment
    from kaizen.tuning.result import TrialRecord
    from kaizen.tuning.spec import (
        ExperimentSpecError,
        apply_overrides,
        load_experiment,
        search_parameters,
    )

    settings = _settings()
    given = [train_data, validation_data, features_file]
    if any(given) and not all(given):
        raise typer.BadParameter(
            "give all of --train-data, --validation-data and --features-file, or none",
            param_hint="--train-data",
        )
    try:
        body = load_experiment(experiment)
    except (ExperimentSpecError, OSError) as error:
        err_console.print("[red]error:[/red]", escape(str(error)))
        raise typer.Exit(2) from None
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
            paths = prepare_default_data(settings.home, settings.feature_repo.absolute(), rows=rows)
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
        err_console.print("[red]error:[/red]", escape(str(error)))
        raise typer.Exit(2) from None
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


@app.command()
def upload(
    pipeline: Annotated[
        Path | None, typer.Option(help="Compiled pipeline YAML (default: the committed one).")
    ] = None,
    name: Annotated[str, typer.Option(help="Pipeline name in the object store.")] = (
        "kaizen-training"
    ),
    commit: Annotated[
        str | None, typer.Option(help="Git commit to record (default: read from git).")
    ] = None,
) -> None:
    """Store the compiled pipeline YAML in the object store under a versioned key.

    Uploading the same pipeline again is a no-op that says so.
    """
    from kaizen.compiler import TRAINING_PIPELINE_YAML
    from kaizen.pipeline_store import PipelineSpecError, git_commit, upload_pipeline
    from kaizen.storage import StorageError, open_store

    settings = _settings()
    try:
        result = upload_pipeline(
            open_store(settings),
            pipeline or TRAINING_PIPELINE_YAML,
            name=name,
            git_commit=commit if commit else git_commit(),
        )
    except (PipelineSpecError, StorageError, OSError) as error:
        err_console.print("[red]error:[/red]", escape(str(error)))
        raise typer.Exit(2) from None
    console.print(escape(result.message))


def _registry_errors() -> tuple[type[BaseException], ...]:
    from kaizen.registry import RegistryError, TrackingError
    from kaizen.training.train import ModelFileError

    return (RegistryError, TrackingError, ModelFileError)


@app.command()
def promote(
    version: Annotated[int, typer.Argument(help="Model version to make champion.")],
) -> None:
    """Make VERSION the champion; the previous champion is recorded for rollback."""
    from kaizen.registry import promote as promote_version

    _settings()
    try:
        result = promote_version(version)
    except _registry_errors() as error:
        err_console.print("[red]error:[/red]", escape(str(error)))
        raise typer.Exit(1) from None
    if not result.changed:
        console.print(f"{result.name} v{result.champion} is already the champion; nothing changed")
        return
    console.print(
        f"{result.name}: champion is now v{result.champion}"
        + (f" (was v{result.previous_champion})" if result.previous_champion else "")
    )


@app.command()
def rollback() -> None:
    """Restore the previous champion."""
    from kaizen.registry import rollback as rollback_champion

    _settings()
    try:
        result = rollback_champion()
    except _registry_errors() as error:
        err_console.print("[red]error:[/red]", escape(str(error)))
        raise typer.Exit(1) from None
    console.print(
        f"{result.name}: champion restored to v{result.champion}"
        + (f" (replacing v{result.previous_champion})" if result.previous_champion else "")
    )


def _version_line(label: str, info: dict[str, Any] | None) -> str:
    if not info:
        return f"{label:<18} none"
    metrics = info.get("metrics", {})
    shown = "  ".join(
        f"{name.removeprefix('test_')} {metrics[name]:.3f}"
        for name in ("test_roc_auc", "test_accuracy", "test_recall")
        if name in metrics
    )
    return (
        f"{label:<18} v{info['version']}  registered {str(info.get('registered_at', '?'))[:19]}"
        f"  run {info.get('pipeline_run_id', '?')}  {shown}"
    )


@app.command()
def status(
    limit: Annotated[int, typer.Option(help="Recent pipeline runs to show.")] = 10,
) -> None:
    """Champion, challenger and recent runs with their gate decisions."""
    from kaizen.registry import status as registry_status

    _settings()
    try:
        report = registry_status(limit=limit)
    except _registry_errors() as error:
        err_console.print("[red]error:[/red]", escape(str(error)))
        raise typer.Exit(1) from None
    console.print(f"[bold]{report['model_name']}[/bold]  ({report['tracking_uri']})")
    console.print(_version_line("champion", report.get("champion")))
    console.print(_version_line("challenger", report.get("challenger")))
    console.print(_version_line("previous champion", report.get("previous_champion")))
    table = Table(title="recent pipeline runs")
    for column in ("pipeline run", "started", "status", "gate", "rounds", "registered"):
        table.add_column(column)
    for run_info in report.get("recent_runs", []):
        version = run_info.get("registered_version")
        table.add_row(
            str(run_info.get("pipeline_run_id", "?")),
            str(run_info.get("started_at", ""))[:19],
            str(run_info.get("status", "")),
            str(run_info.get("gate") or "-"),
            str(len(run_info.get("gate_rounds") or [])),
            f"v{version}" if version else "-",
        )
    console.print(table)


@app.command()
def lineage(version: Annotated[str, typer.Argument(help="Version number or alias.")]) -> None:
    """Trace a model version back to its data, features, tuning, code and pipeline run."""
    from rich.tree import Tree

    from kaizen.registry import lineage as version_lineage

    _settings()
    ref: int | str = int(version) if version.isdigit() else version
    try:
        chain = version_lineage(ref)
    except _registry_errors() as error:
        err_console.print("[red]error:[/red]", escape(str(error)))
        raise typer.Exit(1) from None
    model = chain["model"]
    tree = Tree(
        f"[bold]{model['name']} v{model['version']}[/bold] "
        f"({', '.join(model.get('aliases', [])) or 'no alias'})  sha256 {model['sha256'][:16]}…"
    )
    tree.add(f"MLflow run {chain.get('mlflow_run_id')} (parent {chain.get('parent_run_id')})")
    tree.add(f"pipeline run {chain.get('pipeline_run_id')}, round {chain.get('round')}")
    data = chain.get("data", {})
    data_node = tree.add(f"training data fingerprint {str(data.get('fingerprint', '?'))[:16]}…")
    for split, window in data.get("windows", {}).items():
        data_node.add(f"{split}: {window.get('start', '?')} .. {window.get('end', '?')}")
    features = chain.get("features", {})
    tree.add(
        f"feature service {features.get('service', '?')}: {', '.join(features.get('views', []))}"
    )
    tuning = chain.get("tuning", {})
    tuning_node = tree.add(
        f"Katib experiment {tuning.get('katib_experiment', '?')}, "
        f"best trial {tuning.get('best_trial', '?')}"
    )
    for name, value in tuning.get("best_parameters", {}).items():
        tuning_node.add(f"{name} = {value}")
    tree.add(f"code {chain.get('code', {}).get('git_commit', '?')}")
    console.print(tree)


if __name__ == "__main__":
    app()
