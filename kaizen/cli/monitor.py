"""``kaizen monitor``: drift and live-performance checks of the champion, and retraining."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from kaizen.cli._app import app, console, fail, load_settings_or_exit

if TYPE_CHECKING:
    from kaizen.monitoring.monitor import MonitorCollector, MonitorReport
    from kaizen.monitoring.trigger import Starter, TriggerOutcome
    from kaizen.platform.settings import Settings
    from kaizen.platform.storage import ObjectStore


@app.command()
def monitor(
    once: Annotated[
        bool, typer.Option("--once", help="Check once, write --metrics-file, and exit (cron).")
    ] = False,
    interval: Annotated[
        float, typer.Option(min=1.0, help="Seconds between two checks in loop mode.")
    ] = 300.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve the gauges on this port in loop mode (0: none).", min=0),
    ] = 9109,
    metrics_host: Annotated[
        str, typer.Option(help="Address the gauges are served on.")
    ] = "127.0.0.1",
    metrics_file: Annotated[
        Path | None,
        typer.Option(help="Write the gauges here after each check (Prometheus textfile)."),
    ] = None,
    mlflow: Annotated[
        bool, typer.Option("--mlflow/--no-mlflow", help="Log each check to MLflow.")
    ] = True,
) -> None:
    """Check the champion's recent predictions for drift and its labelled ones for live
    precision, recall and ROC-AUC; on a breach, start retraining (KAIZEN_RETRAIN_TARGET).

    Thresholds and windows are KAIZEN_MONITOR_* settings (docs/monitoring.md).
    """
    from prometheus_client import CollectorRegistry

    from kaizen.monitoring.monitor import MonitorCollector
    from kaizen.platform.storage import open_store

    settings = load_settings_or_exit()
    store = open_store(settings)
    collector = MonitorCollector(settings.model_name)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    if once:
        try:
            _check_once(settings, store, collector, registry, metrics_file, mlflow=mlflow)
        except _CheckError as error:
            fail(error.message, error.code)
        return
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=metrics_host, registry=registry)
        console.print(f"gauges on http://{metrics_host}:{metrics_port}/metrics")
    while not stop.is_set():
        try:
            _check_once(settings, store, collector, registry, metrics_file, mlflow=mlflow)
        except _CheckError as error:
            console.print(f"[red]check failed:[/red] {escape(error.message)}")
        except Exception as error:  # the loop outlives one bad check; the next may pass
            console.print(f"[red]check failed:[/red] {escape(_redacted(error))}")
        stop.wait(interval)


class _CheckError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _check_once(
    settings: Settings,
    store: ObjectStore,
    collector: MonitorCollector,
    registry: Any,
    metrics_file: Path | None,
    *,
    mlflow: bool,
) -> None:
    from prometheus_client import write_to_textfile

    from kaizen.monitoring.monitor import MonitorError, check, log_to_mlflow, save_last_check
    from kaizen.monitoring.reference import ReferenceError
    from kaizen.monitoring.trigger import RetrainError, on_breaches, retrainings_started
    from kaizen.platform.redaction import redact_text
    from kaizen.platform.storage import StorageError
    from kaizen.registry import RegistryError

    try:
        report = check(settings, store)
    except (MonitorError, ReferenceError, RegistryError, StorageError) as error:
        raise _CheckError(redact_text(str(error))) from None
    outcome = None
    try:
        starter = _starter(settings)
        fingerprint = _fingerprint(settings)
        outcome = on_breaches(
            report, settings=settings, store=store, fingerprint=fingerprint, starter=starter
        )
    except (RetrainError, ValueError) as error:
        console.print(f"[red]retraining:[/red] {escape(redact_text(str(error)))}")
    save_last_check(store, report)
    if mlflow:
        try:
            log_to_mlflow(settings, report)
        except Exception as error:  # MLflow down must not hide the check's result
            console.print(f"[yellow]not logged to MLflow:[/yellow] {escape(_redacted(error))}")
    collector.report = report
    collector.retrainings = retrainings_started(store, settings.model_name)
    if metrics_file is not None:
        metrics_file.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(metrics_file), registry)
    _render(report, outcome)


def _redacted(error: BaseException) -> str:
    from kaizen.platform.redaction import redact_text

    return redact_text(f"{type(error).__name__}: {error}")


def _fingerprint(settings: Settings) -> str:
    from kaizen.pipeline.fingerprint import file_fingerprint, synthetic_fingerprint

    if settings.retrain_source_uri:
        return file_fingerprint(settings.retrain_source_uri)
    return synthetic_fingerprint({})


def _starter(settings: Settings) -> Starter | None:
    from kaizen.monitoring.trigger import github_starter, local_starter

    target = settings.retrain_target
    if target == "github":
        return github_starter(settings)
    if target == "local":
        return local_starter(settings)
    if target == "kfp":
        return _kfp_starter(settings)
    return None


def _kfp_starter(settings: Settings) -> Starter:
    """``kaizen submit --run-name retrain-<fingerprint> --skip-existing``, as a library call."""
    from kaizen.cli.pipeline import _arguments, _kfp_client
    from kaizen.monitoring.trigger import RetrainError, RetrainRequest
    from kaizen.pipeline.kfp_api import KfpError, find_version, submit_run

    def start(request: RetrainRequest) -> str:
        params = [f"source_uri={request.source_uri}"] if request.source_uri else []
        try:
            client = _kfp_client(settings, None, None)
            chosen, arguments = _arguments(settings, settings.pipeline_name, None, params)
            run = submit_run(
                client,
                find_version(client, settings.pipeline_name, chosen),
                arguments=arguments,
                experiment=settings.pipeline_name,
                run_name=request.run_name,
                service_account=settings.kfp_service_account or None,
                skip_existing=True,
            )
        except typer.Exit:
            raise RetrainError("kaizen submit refused (see the error above)") from None
        except KfpError as error:
            raise RetrainError(str(error)) from None
        already = " (already existed: nothing new started)" if run.existed else ""
        return f"KFP run {run.run_id} {run.display_name}{already}: {run.url}"

    return start


def _render(report: MonitorReport, outcome: TriggerOutcome | None) -> None:
    console.print(
        f"[bold]{escape(report.model)}[/bold] v{report.version}  checked {report.checked_at[:19]}"
        f"  {report.predictions} recent prediction(s)"
    )
    if report.features:
        table = Table(title="drift against the training reference")
        for column in ("column", "PSI", "KS p-value", "rows"):
            table.add_column(column)
        for drift in [*report.features, *([report.score] if report.score else [])]:
            pvalue = "-" if drift.ks_pvalue is None else f"{drift.ks_pvalue:.3g}"
            table.add_row(escape(drift.name), f"{drift.psi:.3f}", pvalue, str(drift.rows))
        console.print(table)
    if report.live is not None:
        shown = ", ".join(
            f"{name} {'-' if value is None else f'{value:.3f}'}"
            for name, value in report.live.values().items()
        )
        console.print(
            f"live: {shown} on {report.live.labelled} labelled ({report.live.frauds} fraud)"
        )
    for note in report.notes:
        console.print(f"note: {escape(note)}", soft_wrap=True)
    for breach in report.breaches:
        console.print(f"[red]BREACH[/red] {breach.check}: {escape(breach.reason)}", soft_wrap=True)
    if not report.breaches:
        console.print("no breach")
    if outcome is not None and outcome.status != "no_breach":
        console.print(
            f"retraining ({outcome.target}): {outcome.status}"
            + (f": {escape(outcome.detail)}" if outcome.detail else ""),
            soft_wrap=True,
        )
