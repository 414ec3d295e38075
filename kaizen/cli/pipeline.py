"""``kaizen compile``, ``kaizen run`` and ``kaizen upload``: the pipeline as an artifact."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from kaizen.cli._app import app, console, fail, load_settings_or_exit, parse_params


@app.command("compile")
def compile_command(
    output: Annotated[
        Path | None, typer.Option(help="Where to write the YAML (default: beside the pipeline).")
    ] = None,
    image_digest: Annotated[
        str | None, typer.Option(help="Pin every component image by this sha256:... digest.")
    ] = None,
    image_repository: Annotated[
        str | None,
        typer.Option(
            help="With --image-digest: pull from this repository ([registry/]path) instead."
        ),
    ] = None,
) -> None:
    """Compile the training pipeline to YAML (the artifact that goes to the cluster)."""
    from kaizen.pipeline.compiler import TRAINING_PIPELINE_YAML, CompileError, compile_pipeline

    try:
        path = compile_pipeline(
            output or TRAINING_PIPELINE_YAML,
            image_digest=image_digest,
            image_repository=image_repository,
        )
    except CompileError as error:
        fail(error, 2)
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
    from kaizen.pipeline.compiler import TRAINING_PIPELINE_YAML
    from kaizen.pipeline.runner import TaskEvent, run_pipeline
    from kaizen.pipeline.summary import summarize_run

    settings = load_settings_or_exit()
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
    arguments.update(parse_params(param or []))

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
        fail(f"run failed: {result.error or ''}\nfull log: {result.log_path}")


@app.command()
def upload(
    pipeline: Annotated[
        Path | None, typer.Option(help="Compiled pipeline YAML (default: the committed one).")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="Pipeline name in the object store (default: KAIZEN_PIPELINE_NAME)."),
    ] = None,
    commit: Annotated[
        str | None, typer.Option(help="Git commit to record (default: read from git).")
    ] = None,
) -> None:
    """Store the compiled pipeline YAML in the object store under a versioned key.

    Uploading the same pipeline again is a no-op that says so.
    """
    from kaizen.pipeline.compiler import TRAINING_PIPELINE_YAML
    from kaizen.pipeline.store import PipelineSpecError, upload_pipeline
    from kaizen.platform.git import git_commit
    from kaizen.platform.storage import StorageError, open_store

    settings = load_settings_or_exit()
    try:
        result = upload_pipeline(
            open_store(settings),
            pipeline or TRAINING_PIPELINE_YAML,
            name=name or settings.pipeline_name,
            git_commit=commit if commit else git_commit(),
        )
    except (PipelineSpecError, StorageError, OSError) as error:
        fail(error, 2)
    console.print(result.message)
