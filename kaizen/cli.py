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

from kaizen.platform.settings import Settings, SettingsError, load_settings

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
    from kaizen.pipeline.compiler import TRAINING_PIPELINE_YAML, CompileError, compile_pipeline

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
    from kaizen.pipeline.compiler import TRAINING_PIPELINE_YAML
    from kaizen.pipeline.runner import TaskEvent, run_pipeline
    from kaizen.pipeline.summary import summarize_run

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
    from kaizen.pipeline.compiler import TRAINING_PIPELINE_YAML
    from kaizen.pipeline.store import PipelineSpecError, git_commit, upload_pipeline
    from kaizen.platform.storage import StorageError, open_store

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
    rejected = report.get("last_rejected")
    if rejected:
        console.print(
            f"{'last rejected':<18} v{rejected['version']}  at {str(rejected['rejected_at'])[:19]}"
            f"  by {rejected.get('rejected_by') or '?'}: {escape(str(rejected['reason']))}"
        )
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


def _positive(name: str) -> Any:
    def check(value: float | None) -> float | None:
        if value is not None and not value > 0:
            raise typer.BadParameter(f"must be greater than 0, got {value}", param_hint=name)
        return value

    return check


def _champion_problem(settings: Settings) -> str | None:
    """Why the server would have no model to serve, or None when a champion exists."""
    hint = "run `make run` (trains and registers one) or `kaizen promote VERSION`"
    database = settings.tracking_uri.removeprefix("sqlite:///")
    if database != settings.tracking_uri and not Path(database).exists():
        # No registry database yet: nothing was ever registered (and nothing to create).
        return f"no champion model: no registry at {database}; {hint}"
    from kaizen.registry.models import ModelRegistry

    try:
        champion = ModelRegistry(settings).by_alias("champion")
    except _registry_errors() as error:
        return f"cannot read the registry at {settings.tracking_uri}: {error}"
    if champion is None:
        return f"no champion model for {settings.model_name!r} in {settings.tracking_uri}; {hint}"
    return None


def _serve_feature_repo(settings: Settings, given: Path | None, no_feast: bool) -> Path | None:
    """The Feast repo to serve entity requests with, or None for feature vectors only."""
    registry = settings.feast_dir / "registry.db"
    if no_feast:
        return None
    if given is not None:
        if not (given / "feature_store.yaml").is_file():
            raise typer.BadParameter(
                f"{given} is not a Feast repo (no feature_store.yaml in it)",
                param_hint="--feature-repo",
            )
        if not registry.is_file():
            err_console.print(
                f"[red]error:[/red] the feature repo is not applied under KAIZEN_HOME "
                f"(no {escape(str(registry))}); run `make run`, which applies and "
                "materializes it, or serve feature vectors only with --no-feast"
            )
            raise typer.Exit(1)
        return given.absolute()
    default = settings.feature_repo
    if (default / "feature_store.yaml").is_file() and registry.is_file():
        return default.absolute()
    err_console.print(
        f"note: Feast is not applied under {escape(str(settings.home))}, so entity requests "
        "(customer/merchant ids) are refused; feature vectors work. `make run` sets Feast up."
    )
    return None


@app.command()
def serve(
    http_port: Annotated[
        int, typer.Option("--http-port", "--port", min=1, max=65535, help="HTTP port.")
    ] = 8080,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default: 127.0.0.1).")
    ] = None,
    model_name: Annotated[
        str | None,
        typer.Option(help="Model name in the URLs (default: KAIZEN_MODEL_NAME, fraud-detector)."),
    ] = None,
    feature_repo: Annotated[
        Path | None,
        typer.Option(
            help="Feast repo for entity requests (default: KAIZEN_FEATURE_REPO when Feast "
            "is applied under KAIZEN_HOME)."
        ),
    ] = None,
    no_feast: Annotated[
        bool, typer.Option("--no-feast", help="Serve feature vectors only (no entity lookup).")
    ] = False,
    threshold: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Fraud decision threshold (server default: 0.5)."),
    ] = None,
    max_batch: Annotated[
        int | None, typer.Option(min=1, help="Most instances per request (server default: 256).")
    ] = None,
    max_body_bytes: Annotated[
        int | None,
        typer.Option(min=1, help="Largest request body, bytes (server default: 1048576)."),
    ] = None,
    request_timeout: Annotated[
        float | None,
        typer.Option(
            callback=_positive("--request-timeout"),
            help="Per-request budget, seconds (server default: 2.0).",
        ),
    ] = None,
    drain_seconds: Annotated[
        float | None,
        typer.Option(min=0.0, help="Not-ready time before shutdown, seconds (default: 0)."),
    ] = None,
    canary_share: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of traffic to a challenger, below 1; 0 turns the canary off "
            "(default: 0.1).",
        ),
    ] = None,
    canary_min_requests: Annotated[
        int | None,
        typer.Option(min=1, help="Challenger requests before a verdict (default: 200)."),
    ] = None,
    reload_interval: Annotated[
        float | None,
        typer.Option(
            callback=_positive("--reload-interval"),
            help="Seconds between registry alias checks (default: 2.0).",
        ),
    ] = None,
    no_canary: Annotated[
        bool, typer.Option("--no-canary", help="Serve the champion only, no challenger.")
    ] = False,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log",
            help="Log one line per request (off: refused and failed requests are logged "
            "anyway, and /metrics counts them all).",
        ),
    ] = False,
    supervise: Annotated[
        bool,
        typer.Option(
            "--supervise/--no-supervise",
            help="Restart the server with backoff if it dies (--no-supervise runs it directly).",
        ),
    ] = True,
    standby: Annotated[
        bool,
        typer.Option(
            "--standby/--no-standby",
            help="Keep a warm standby process (imports done) so a restart takes seconds; "
            "costs a second process's memory.",
        ),
    ] = True,
    stop_timeout: Annotated[
        float,
        typer.Option(
            callback=_positive("--stop-timeout"),
            help="Seconds the server has to exit after Ctrl-C/SIGTERM before it is killed.",
        ),
    ] = 30.0,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="Keep the server's own output in its log file only.")
    ] = False,
    server_module: Annotated[
        str, typer.Option(hidden=True, help="Python module that runs one server.")
    ] = "kaizen.serving.server",
) -> None:
    """Serve the champion model over KServe V1/V2 on HOST:PORT, restarting it if it dies.

    Runs in the foreground; Ctrl-C stops the server cleanly (in-flight requests finish).
    The supervisor's state (child pid, restarts, last exit) is in
    $KAIZEN_HOME/serving/supervisor-PORT.json, the server's output in
    $KAIZEN_HOME/logs/serve-PORT.log.
    """
    import logging
    import os
    import socket

    from kaizen.serving.supervisor import Supervisor, server_command, state_path

    if canary_share is not None and canary_share >= 1.0:
        # The champion must keep some traffic, or there is nothing to compare with.
        err_console.print(
            f"[red]error:[/red] --canary-share must be below 1 (0 turns the canary off), "
            f"got {canary_share}"
        )
        raise typer.Exit(2)
    settings = _settings()
    repo = _serve_feature_repo(settings, feature_repo, no_feast)
    problem = _champion_problem(settings)
    if problem:
        err_console.print("[red]error:[/red]", escape(problem))
        raise typer.Exit(1)
    state_file = state_path(settings.home, http_port)
    with contextlib.suppress(OSError, ValueError):
        state = json.loads(state_file.read_text())
        pid = int(state.get("supervisor_pid") or 0)
        if state.get("state") != "stopped" and pid and pid != os.getpid():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                pass  # a supervisor that died without cleaning up: its state is stale
            else:
                err_console.print(
                    f"[red]error:[/red] a supervisor (pid {pid}) already serves port "
                    f"{http_port} (see {escape(str(state_file))})"
                )
                raise typer.Exit(1)
    address = host or "127.0.0.1"
    with socket.socket() as probe:
        # As the server will: a port left in TIME_WAIT by a previous server is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, http_port))
        except OSError as error:
            err_console.print(
                f"[red]error:[/red] cannot listen on {escape(address)}:{http_port}: "
                f"{escape(error.strerror or str(error))}; choose another --http-port"
            )
            raise typer.Exit(1) from None

    # Only what the user chose is passed on: every other default is the server's own.
    args = ["--http-port", str(http_port), "--model-name", model_name or settings.model_name]
    if host is not None:
        args += ["--host", host]
    if repo is not None:
        args += ["--feature-repo", str(repo)]
    for flag, value in (
        ("--threshold", threshold),
        ("--max-batch", max_batch),
        ("--max-body-bytes", max_body_bytes),
        ("--request-timeout", request_timeout),
        ("--drain-seconds", drain_seconds),
        ("--canary-share", canary_share),
        ("--canary-min-requests", canary_min_requests),
        ("--reload-interval", reload_interval),
    ):
        if value is not None:
            args += [flag, str(value)]
    if no_canary:
        args.append("--no-canary")
    if access_log:
        args.append("--access-log")
    command = server_command(args, module=server_module)
    # The server reads KAIZEN_HOME itself; made absolute so it cannot depend on its cwd.
    env = {"KAIZEN_HOME": str(settings.home)}
    if not supervise:
        sys.stdout.flush()
        os.execve(command[0], command, {**os.environ, **env})
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s kaizen serve: %(message)s", datefmt="%H:%M:%S"
    )
    supervisor = Supervisor(
        command,
        port=http_port,
        home=settings.home,
        env=env,
        stop_timeout=stop_timeout,
        ready_url=f"http://{'127.0.0.1' if address in ('0.0.0.0', '') else address}:"
        f"{http_port}/v2/health/ready",
        echo=None if quiet else sys.stderr,
        standby=standby,
    )
    try:
        code = supervisor.run()
    except OSError as error:
        err_console.print(
            f"[red]error:[/red] cannot start {escape(command[0])}: {escape(str(error))}"
        )
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def _read_features_json(source: str) -> Any:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as error:
        raise typer.BadParameter(
            f"cannot read {source}: {error.strerror or error}", param_hint="--features-json"
        ) from None
    try:
        return json.loads(text)
    except ValueError as error:
        raise typer.BadParameter(
            f"{'stdin' if source == '-' else source} is not JSON: {error}",
            param_hint="--features-json",
        ) from None


@app.command()
def predict(
    customer_id: Annotated[str | None, typer.Option(help="Customer id (entity request).")] = None,
    merchant_id: Annotated[str | None, typer.Option(help="Merchant id (entity request).")] = None,
    amount: Annotated[float | None, typer.Option(help="Transaction amount.")] = None,
    timestamp: Annotated[
        str | None,
        typer.Option(help="Transaction time, ISO 8601 with offset (default: now, server side)."),
    ] = None,
    features_json: Annotated[
        str | None,
        typer.Option(
            help="Feature vector(s) from a JSON file ('-' = stdin): V1 an object of features "
            "by name (or a list of them), V2 a list of values in model order (or a list of rows)."
        ),
    ] = None,
    url: Annotated[str, typer.Option(help="Server base URL.")] = "http://127.0.0.1:8080",
    model: Annotated[str, typer.Option(help="Model name.")] = "fraud-detector",
    protocol: Annotated[
        str, typer.Option(help="v1 (entity or named features) or v2 (feature tensor).")
    ] = "v1",
    timeout: Annotated[
        float, typer.Option(callback=_positive("--timeout"), help="Seconds to wait for an answer.")
    ] = 10.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the server's raw JSON response.")
    ] = False,
) -> None:
    """Score one transaction (or a file of feature vectors) against a running server.

    V1 sends --customer-id/--merchant-id/--amount as an entity request (the server reads the
    customer's and merchant's features from Feast), or the vectors in --features-json.
    V2 sends the --features-json rows as the Open Inference Protocol tensor.
    """
    from kaizen.serving.client import (
        ClientError,
        PredictClient,
        entity_instance,
        tensor_rows,
        vector_instances,
    )

    version = protocol.lower()
    if version not in ("v1", "v2"):
        raise typer.BadParameter(f"expected v1 or v2, got {protocol!r}", param_hint="--protocol")
    entity_options = {
        "--customer-id": customer_id,
        "--merchant-id": merchant_id,
        "--amount": amount,
        "--timestamp": timestamp,
    }
    given = [name for name, value in entity_options.items() if value is not None]
    if features_json is not None and given:
        raise typer.BadParameter(
            f"give either --features-json or the entity options, not both (got {', '.join(given)})",
            param_hint="--features-json",
        )
    if version == "v2" and features_json is None:
        raise typer.BadParameter(
            "--protocol v2 sends the feature tensor, which needs --features-json with the "
            "values in model order; entity requests (ids) go over --protocol v1",
            param_hint="--features-json",
        )
    try:
        client = PredictClient(url, model, timeout=timeout)
    except ValueError as error:
        hint = "--model" if "model name" in str(error) else "--url"
        raise typer.BadParameter(str(error), param_hint=hint) from None
    try:
        if features_json is not None:
            payload = _read_features_json(features_json)
            try:
                if version == "v2":
                    predictions, body = client.predict_v2(tensor_rows(payload))
                else:
                    predictions, body = client.predict_v1(vector_instances(payload))
            except ValueError as error:
                if isinstance(error, ClientError):
                    raise
                raise typer.BadParameter(str(error), param_hint="--features-json") from None
        else:
            missing = [
                name
                for name in ("--customer-id", "--merchant-id", "--amount")
                if entity_options[name] is None
            ]
            if missing:
                raise typer.BadParameter(
                    f"missing {', '.join(missing)}: an entity request needs --customer-id, "
                    "--merchant-id and --amount (or send vectors with --features-json)",
                    param_hint=missing[0],
                )
            assert customer_id is not None and merchant_id is not None and amount is not None
            try:
                instance = entity_instance(customer_id, merchant_id, amount, timestamp)
            except ValueError as error:
                culprit = next(
                    (
                        name
                        for name, word in (
                            ("--timestamp", "timestamp"),
                            ("--amount", "amount"),
                            ("--customer-id", "customer"),
                            ("--merchant-id", "merchant"),
                        )
                        if word in str(error)
                    ),
                    None,
                )
                raise typer.BadParameter(str(error), param_hint=culprit) from None
            predictions, body = client.predict_v1([instance])
    except ClientError as error:
        err_console.print("[red]error:[/red]", escape(str(error)))
        raise typer.Exit(1) from None
    if as_json:
        console.print_json(json.dumps(body))
        return
    table = Table(title=f"{model} at {url} ({version.upper()})")
    for column in ("#", "fraud probability", "decision", "model version"):
        table.add_column(column)
    for index, prediction in enumerate(predictions):
        decision = {True: "[red]fraud[/red]", False: "[green]legit[/green]", None: "-"}[
            prediction.is_fraud
        ]
        table.add_row(
            str(index),
            f"{prediction.fraud_probability:.4f}",
            decision,
            f"v{prediction.model_version}",
        )
    if any(prediction.is_fraud is None for prediction in predictions):
        table.caption = "V2 returns probabilities only; the decision is in V1 responses"
    console.print(table)


if __name__ == "__main__":
    app()
