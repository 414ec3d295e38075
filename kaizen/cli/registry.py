"""``kaizen promote``, ``rollback``, ``status`` and ``lineage``: the model registry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from kaizen.cli._app import app, console, fail, load_settings_or_exit

if TYPE_CHECKING:
    from kaizen.platform.settings import Settings


def registry_errors() -> tuple[type[BaseException], ...]:
    """The errors a registry command reports as ``error: ...`` (exit 1).

    MLflow's own errors are among them: an unreachable tracking server is a failed operation
    to report (with the URI's credentials masked by ``fail``), not a traceback.
    """
    from mlflow.exceptions import MlflowException

    from kaizen.registry import RegistryError, TrackingError
    from kaizen.training.train import ModelFileError

    return (RegistryError, TrackingError, ModelFileError, MlflowException)


@app.command()
def promote(
    version: Annotated[int, typer.Argument(help="Model version to make champion.")],
) -> None:
    """Make VERSION the champion; the previous champion is recorded for rollback."""
    from kaizen.registry import promote as promote_version

    settings = load_settings_or_exit()
    try:
        result = promote_version(version, settings=settings)
    except registry_errors() as error:
        fail(error)
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

    settings = load_settings_or_exit()
    try:
        result = rollback_champion(settings=settings)
    except registry_errors() as error:
        fail(error)
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
    promoted = (
        f"  promoted by {info['promoted_by']}"
        if info.get("promoted_by") and label == "champion"
        else ""
    )
    return (
        f"{label:<18} v{info['version']}  registered {str(info.get('registered_at', '?'))[:19]}"
        f"  run {info.get('pipeline_run_id', '?')}  {shown}{promoted}"
    )


@app.command()
def status(
    limit: Annotated[int, typer.Option(help="Recent pipeline runs to show.")] = 10,
) -> None:
    """Champion, challenger and recent runs with their gate decisions."""
    from kaizen.registry import status as registry_status

    settings = load_settings_or_exit()
    try:
        report = registry_status(limit=limit, settings=settings)
    except registry_errors() as error:
        fail(error)
    # The report's tracking URI comes with its credentials masked (kaizen.registry.status).
    console.print(
        f"[bold]{escape(report['model_name'])}[/bold]  ({escape(report['tracking_uri'])})"
    )
    console.print(_version_line("champion", report.get("champion")))
    console.print(_version_line("challenger", report.get("challenger")))
    console.print(_version_line("previous champion", report.get("previous_champion")))
    rejected = report.get("last_rejected")
    if rejected:
        console.print(
            f"{'last rejected':<18} v{rejected['version']}  at {str(rejected['rejected_at'])[:19]}"
            f"  by {rejected.get('rejected_by') or '?'}: {escape(str(rejected['reason']))}"
        )
    console.print(_monitoring_line(settings), soft_wrap=True)
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

    settings = load_settings_or_exit()
    ref: int | str = int(version) if version.isdigit() else version
    try:
        chain = version_lineage(ref, settings=settings)
    except registry_errors() as error:
        fail(error)
    model = chain["model"]
    tree = Tree(
        f"[bold]{model['name']} v{model['version']}[/bold] "
        f"({', '.join(model.get('aliases', [])) or 'no alias'})  sha256 {model['sha256'][:16]}…"
    )
    tree.add(f"MLflow run {chain.get('mlflow_run_id')} (parent {chain.get('parent_run_id')})")
    tree.add(f"pipeline run {chain.get('pipeline_run_id')}, round {chain.get('round')}")
    data = chain.get("data", {})
    data_node = tree.add(f"training data fingerprint {str(data.get('fingerprint', '?'))[:16]}…")
    for split, window in (data.get("windows") or {}).items():
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


def _monitoring_line(settings: Settings) -> str:
    """``kaizen monitor``'s last check in one line: when, which version, the breaches."""
    from kaizen.monitoring.monitor import last_check
    from kaizen.platform.redaction import redact_text
    from kaizen.platform.storage import StorageError, open_store

    try:
        last = last_check(open_store(settings), settings.model_name)
    except (StorageError, ValueError) as error:
        return f"{'monitoring':<18} unreadable: {escape(redact_text(str(error)))}"
    if last is None:
        return f"{'monitoring':<18} never checked (kaizen monitor)"
    breaches = [str(breach["check"]) for breach in last.get("breaches", [])]
    verdict = f"[red]breaches: {', '.join(breaches)}[/red]" if breaches else "no breach"
    return (
        f"{'monitoring':<18} last check {str(last.get('checked_at', '?'))[:19]} of "
        f"v{last.get('version', '?')}: {verdict}"
    )
