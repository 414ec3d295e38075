"""The ``kaizen`` command line."""

from __future__ import annotations

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
    arguments: dict[str, Any] = {"feature_repo": str(settings.feature_repo.absolute())}
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


if __name__ == "__main__":
    app()
