"""``kaizen compile``, ``run``, ``upload``, ``submit``, ``schedule``: the pipeline artifact."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from kaizen.cli._app import app, console, fail, load_settings_or_exit, parse_params

if TYPE_CHECKING:
    from kaizen.pipeline.kfp_api import KfpClient
    from kaizen.platform.settings import Settings


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


KfpHostOption = Annotated[
    str | None,
    typer.Option(
        "--kfp-host",
        help="Kubeflow Pipelines API, e.g. https://kubeflow.example.com/pipeline "
        "(default: KAIZEN_KFP_HOST).",
    ),
]
TokenFileOption = Annotated[
    Path | None,
    typer.Option(
        help="File with the bearer token for KFP, e.g. a ServiceAccount token "
        "(default: KAIZEN_KFP_TOKEN_FILE).",
    ),
]
PipelineNameOption = Annotated[
    str | None, typer.Option(help="Pipeline name (default: KAIZEN_PIPELINE_NAME).")
]


def _kfp_client(settings: Settings, kfp_host: str | None, token_file: Path | None) -> KfpClient:
    """The KFP API client of this command, from its options and the settings."""
    from kaizen.pipeline.kfp_api import KfpClient, KfpConfigError

    host = kfp_host or settings.kfp_host
    if not host:
        fail("no Kubeflow Pipelines host: give --kfp-host or set KAIZEN_KFP_HOST", 2)
    try:
        return KfpClient(
            host,
            token_file=token_file or settings.kfp_token_file,
            namespace=settings.kfp_namespace,
            ui_url=settings.kfp_ui_url,
            ca_file=settings.kfp_ca_file,
            verify_tls=settings.kfp_verify_tls,
        )
    except KfpConfigError as error:
        fail(error, 2)


def _fail_kfp(error: Exception) -> NoReturn:
    """End the command for a KFP error: exit 2 for a bad host or token file, else 1."""
    from kaizen.pipeline.kfp_api import KfpConfigError

    fail(error, 2 if isinstance(error, KfpConfigError) else 1)


@app.command()
def upload(
    pipeline: Annotated[
        Path | None, typer.Option(help="Compiled pipeline YAML (default: the committed one).")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            help="Pipeline name in the object store and KFP (default: KAIZEN_PIPELINE_NAME)."
        ),
    ] = None,
    commit: Annotated[
        str | None, typer.Option(help="Git commit to record (default: read from git).")
    ] = None,
    kfp_host: Annotated[
        str | None,
        typer.Option(
            "--kfp-host",
            help="Also upload it to this Kubeflow Pipelines API as a pipeline version "
            "(default: KAIZEN_KFP_HOST; neither: the object store only).",
        ),
    ] = None,
    token_file: TokenFileOption = None,
) -> None:
    """Store the compiled pipeline YAML in the object store under a versioned key.

    With a KFP host, also upload it to Kubeflow Pipelines as a version of the pipeline
    (created on first upload), named like the stored version. Uploading the same pipeline
    again is a no-op that says so, in the store and in KFP.
    """
    from kaizen.pipeline.compiler import TRAINING_PIPELINE_YAML
    from kaizen.pipeline.kfp_api import KfpError, publish_pipeline_version
    from kaizen.pipeline.store import PipelineSpecError, upload_pipeline
    from kaizen.platform.git import git_commit
    from kaizen.platform.storage import StorageError, open_store

    settings = load_settings_or_exit()
    yaml_path = pipeline or TRAINING_PIPELINE_YAML
    pipeline_name = name or settings.pipeline_name
    client = _kfp_client(settings, kfp_host, token_file) if kfp_host or settings.kfp_host else None
    try:
        store = open_store(settings)
        result = upload_pipeline(
            store,
            yaml_path,
            name=pipeline_name,
            git_commit=commit if commit else git_commit(),
        )
        # KFP gets the stored bytes, so its version is exactly the bucket's.
        package = store.get_bytes(result.key) if client is not None else b""
    except (PipelineSpecError, StorageError, OSError, ValueError) as error:
        fail(error, 2)
    console.print(result.message)
    if client is None:
        return
    try:
        published = publish_pipeline_version(
            client,
            package,
            pipeline_name=pipeline_name,
            version_name=result.version,
            description=f"Kaizen pipeline {pipeline_name}, stored at {result.uri}",
        )
    except KfpError as error:
        _fail_kfp(error)
    console.print(published.message, soft_wrap=True)


def _stored_version(
    settings: Settings, pipeline_name: str, version: str | None
) -> tuple[str, bytes]:
    """The stored version to run (default: the newest ``kaizen upload`` stored) and its YAML."""
    from kaizen.pipeline.store import index_key, list_pipeline_versions, pipeline_key
    from kaizen.platform.storage import StorageError, open_store

    try:
        store = open_store(settings)
        stored = [record["version"] for record in list_pipeline_versions(store, pipeline_name)]
        where = store.uri(index_key(pipeline_name))
        if not stored:
            fail(
                f"no version of pipeline {pipeline_name!r} in the object store ({where}); "
                "store and upload one first: kaizen upload --kfp-host ...",
                2,
            )
        chosen = version or stored[-1]
        if chosen not in stored:
            recent = ", ".join(reversed(stored[-5:]))
            fail(
                f"pipeline {pipeline_name!r} has no stored version {chosen!r} ({where}); "
                f"newest stored: {recent}",
                2,
            )
        return chosen, store.get_bytes(pipeline_key(pipeline_name, chosen))
    except (StorageError, ValueError) as error:  # ValueError: a name no key can hold
        fail(error, 2)


def _arguments(
    settings: Settings, pipeline_name: str, version: str | None, params: list[str] | None
) -> tuple[str, dict[str, Any]]:
    """The version to run and its checked parameter values, before any request to KFP."""
    from kaizen.pipeline.parameters import (
        ParameterError,
        parameters_from_yaml,
        parse_assignments,
        resolve_arguments,
    )

    chosen, data = _stored_version(settings, pipeline_name, version)
    try:
        assignments = parse_assignments(params or [])
        declared = parameters_from_yaml(data, source=f"{pipeline_name} version {chosen}")
        arguments = resolve_arguments(
            declared, assignments, pipeline=f"pipeline {pipeline_name!r} version {chosen}"
        )
    except ParameterError as error:
        fail(error, 2)
    return chosen, arguments


@app.command()
def submit(
    version: Annotated[
        str | None,
        typer.Option(help="Stored pipeline version to run (default: the newest uploaded)."),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="A pipeline parameter, NAME=VALUE (repeatable)."),
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option(help="KFP experiment, created if absent (default: the pipeline name)."),
    ] = None,
    run_name: Annotated[
        str | None, typer.Option(help="Display name of the run (default: version and time).")
    ] = None,
    skip_existing: Annotated[
        bool,
        typer.Option(
            "--skip-existing",
            help="With --run-name: if the experiment already has a run of that name, print it "
            "and start nothing.",
        ),
    ] = False,
    name: PipelineNameOption = None,
    kfp_host: KfpHostOption = None,
    token_file: TokenFileOption = None,
) -> None:
    """Start a run of a stored pipeline version on Kubeflow Pipelines; print its UI link.

    Parameters are checked against the version's declared inputs (names and types) before
    anything is sent.
    """
    if skip_existing and not run_name:
        fail("--skip-existing needs --run-name (the name that identifies the run)", code=2)
    from kaizen.pipeline.kfp_api import KfpError, find_version, submit_run

    settings = load_settings_or_exit()
    pipeline_name = name or settings.pipeline_name
    client = _kfp_client(settings, kfp_host, token_file)
    chosen, arguments = _arguments(settings, pipeline_name, version, param)
    try:
        run = submit_run(
            client,
            find_version(client, pipeline_name, chosen),
            arguments=arguments,
            experiment=experiment or pipeline_name,
            run_name=run_name,
            service_account=settings.kfp_service_account or None,
            skip_existing=skip_existing,
        )
    except KfpError as error:
        _fail_kfp(error)
    if run.existed:
        console.print(
            f"run [bold]{run.run_id}[/bold] named {run.display_name!r} already exists in "
            f"experiment {run.experiment_name!r}: nothing started",
            soft_wrap=True,
        )
        console.print(run.url, soft_wrap=True, markup=False)
        return
    console.print(
        f"started run [bold]{run.run_id}[/bold] of pipeline {pipeline_name!r} version "
        f"{chosen} in experiment {run.experiment_name!r}",
        soft_wrap=True,
    )
    console.print(run.url, soft_wrap=True, markup=False)


schedule_app = typer.Typer(
    help="Recurring runs of a stored pipeline version on Kubeflow Pipelines.",
    no_args_is_help=True,
)
app.add_typer(schedule_app, name="schedule")


@schedule_app.command("create")
def schedule_create(
    cron: Annotated[
        str,
        typer.Option(
            help="KFP cron, six fields with seconds first ('0 0 2 * * *': 02:00 daily, "
            "UTC), or @daily, @every 6h, ...",
        ),
    ],
    version: Annotated[
        str | None,
        typer.Option(help="Stored pipeline version every run uses (default: the newest)."),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="A pipeline parameter, NAME=VALUE (repeatable)."),
    ] = None,
    max_concurrency: Annotated[
        int, typer.Option(help="Runs of this schedule at once (1 to 10).")
    ] = 1,
    catchup: Annotated[
        bool,
        typer.Option(
            "--catchup/--no-catchup",
            help="After a pause, start every missed run (default: only the latest one).",
        ),
    ] = False,
    experiment: Annotated[
        str | None,
        typer.Option(help="KFP experiment, created if absent (default: the pipeline name)."),
    ] = None,
    display_name: Annotated[
        str | None, typer.Option("--display-name", help="Name of the recurring run.")
    ] = None,
    name: PipelineNameOption = None,
    kfp_host: KfpHostOption = None,
    token_file: TokenFileOption = None,
) -> None:
    """Create an enabled recurring run of a stored pipeline version.

    The cron, the max concurrency and the parameters are checked before any request.
    """
    from kaizen.pipeline.cron import CronError, validate_cron
    from kaizen.pipeline.kfp_api import (
        MAX_CONCURRENCY_RANGE,
        KfpError,
        create_schedule,
        find_version,
    )

    try:
        cron = validate_cron(cron)
    except CronError as error:
        fail(error, 2)
    low, high = MAX_CONCURRENCY_RANGE
    if not low <= max_concurrency <= high:
        fail(
            f"--max-concurrency must be between {low} and {high} (KFP's limit), "
            f"got {max_concurrency}",
            2,
        )
    settings = load_settings_or_exit()
    pipeline_name = name or settings.pipeline_name
    client = _kfp_client(settings, kfp_host, token_file)
    chosen, arguments = _arguments(settings, pipeline_name, version, param)
    try:
        schedule = create_schedule(
            client,
            find_version(client, pipeline_name, chosen),
            cron=cron,
            arguments=arguments,
            experiment=experiment or pipeline_name,
            display_name=display_name,
            max_concurrency=max_concurrency,
            catchup=catchup,
            service_account=settings.kfp_service_account or None,
        )
    except KfpError as error:
        _fail_kfp(error)
    catching = "catches up missed runs" if catchup else "no catch-up"
    console.print(
        f"created recurring run [bold]{schedule.recurring_run_id}[/bold] of pipeline "
        f"{pipeline_name!r} version {chosen}: cron {schedule.cron!r}, at most "
        f"{schedule.max_concurrency} at once, {catching}; {schedule.status.lower()}",
        soft_wrap=True,
    )
    console.print(schedule.url, soft_wrap=True, markup=False)


@schedule_app.command("list")
def schedule_list(
    kfp_host: KfpHostOption = None,
    token_file: TokenFileOption = None,
) -> None:
    """List the recurring runs (in KAIZEN_KFP_NAMESPACE when set)."""
    from kaizen.pipeline.kfp_api import KfpError, list_schedules

    settings = load_settings_or_exit()
    client = _kfp_client(settings, kfp_host, token_file)
    try:
        schedules = list_schedules(client)
    except KfpError as error:
        _fail_kfp(error)
    if not schedules:
        console.print(f"no recurring runs in KFP at {client.host}")
        return
    table = Table(title=f"recurring runs at {client.host}")
    table.add_column("id", no_wrap=True)  # whole, to copy into enable/disable/delete
    table.add_column("status", no_wrap=True)
    table.add_column("cron", overflow="fold")
    table.add_column("max", justify="right")
    table.add_column("catch-up")
    table.add_column("name", overflow="fold")
    for s in schedules:
        table.add_row(
            s.recurring_run_id,
            s.status.lower(),
            s.cron,
            str(s.max_concurrency),
            "no" if s.no_catchup else "yes",
            s.display_name,
        )
    console.print(table)


def _switch(
    recurring_run_id: str, enabled: bool, kfp_host: str | None, token_file: Path | None
) -> None:
    from kaizen.pipeline.kfp_api import KfpError, set_schedule_enabled

    settings = load_settings_or_exit()
    client = _kfp_client(settings, kfp_host, token_file)
    try:
        schedule = set_schedule_enabled(client, recurring_run_id, enabled)
    except KfpError as error:
        _fail_kfp(error)
    console.print(
        f"recurring run {schedule.recurring_run_id} ({schedule.display_name}) is "
        f"{schedule.status.lower()}",
        soft_wrap=True,
    )


RecurringRunId = Annotated[str, typer.Argument(help="The recurring run's id (schedule list).")]


@schedule_app.command("enable")
def schedule_enable(
    recurring_run_id: RecurringRunId,
    kfp_host: KfpHostOption = None,
    token_file: TokenFileOption = None,
) -> None:
    """Enable a recurring run: it starts runs on its cron again."""
    _switch(recurring_run_id, True, kfp_host, token_file)


@schedule_app.command("disable")
def schedule_disable(
    recurring_run_id: RecurringRunId,
    kfp_host: KfpHostOption = None,
    token_file: TokenFileOption = None,
) -> None:
    """Disable a recurring run: it starts no runs until enabled."""
    _switch(recurring_run_id, False, kfp_host, token_file)


@schedule_app.command("delete")
def schedule_delete(
    recurring_run_id: RecurringRunId,
    kfp_host: KfpHostOption = None,
    token_file: TokenFileOption = None,
) -> None:
    """Delete a recurring run; the runs it started stay in KFP."""
    from kaizen.pipeline.kfp_api import KfpError, delete_schedule

    settings = load_settings_or_exit()
    client = _kfp_client(settings, kfp_host, token_file)
    try:
        delete_schedule(client, recurring_run_id)
    except KfpError as error:
        _fail_kfp(error)
    console.print(f"deleted recurring run {recurring_run_id}")
