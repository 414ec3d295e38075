"""``kaizen serve``: the champion behind KServe V1/V2, under a restarting supervisor."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from kaizen.cli._app import app, err_console, fail, load_settings_or_exit, positive

if TYPE_CHECKING:
    from kaizen.platform.settings import Settings


def _serve_feature_repo(settings: Settings, given: Path | None, no_feast: bool) -> Path | None:
    """The Feast repo to serve entity requests with, or None for feature vectors only."""
    from kaizen.features.store import is_applied, is_feature_repo

    if no_feast:
        return None
    if given is not None:
        if not is_feature_repo(given):
            raise typer.BadParameter(
                f"{given} is not a Feast repo (no feature_store.yaml in it)",
                param_hint="--feature-repo",
            )
        if not is_applied(settings.home, repo_path=given, config=settings.feast_config):
            fail(
                f"the feature repo is not applied under KAIZEN_HOME ({settings.home}); run "
                "`make run`, which applies and materializes it, or serve feature vectors only "
                "with --no-feast"
            )
        return given.absolute()
    default = settings.feature_repo
    if is_feature_repo(default) and is_applied(
        settings.home, repo_path=default, config=settings.feast_config
    ):
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
        typer.Option(
            min=0.0,
            max=1.0,
            help="Fraud decision threshold for every version (default: each version's "
            "recorded threshold, 0.5 for a version without one).",
        ),
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
            callback=positive("--request-timeout"),
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
            callback=positive("--reload-interval"),
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
            callback=positive("--stop-timeout"),
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

    from kaizen.platform.processes import listen_problem
    from kaizen.registry.readiness import champion_problem
    from kaizen.serving.server import server_arguments
    from kaizen.serving.supervisor import Supervisor, running_supervisor, server_command, state_path

    if canary_share is not None and canary_share >= 1.0:
        # The champion must keep some traffic, or there is nothing to compare with.
        fail(f"--canary-share must be below 1 (0 turns the canary off), got {canary_share}", 2)
    settings = load_settings_or_exit()
    repo = _serve_feature_repo(settings, feature_repo, no_feast)
    problem = champion_problem(settings)
    if problem:
        fail(problem)
    other = running_supervisor(settings.home, http_port)
    if other is not None:
        fail(
            f"a supervisor (pid {other}) already serves port {http_port} "
            f"(see {state_path(settings.home, http_port)})"
        )
    address = host or "127.0.0.1"
    busy = listen_problem(address, http_port)
    if busy:
        fail(f"cannot listen on {address}:{http_port}: {busy}; choose another --http-port")

    # Only what the user chose is passed on: every other default is the server's own.
    args = server_arguments(
        {
            "host": host,
            "http_port": http_port,
            "model_name": model_name or settings.model_name,
            "feature_repo": repo,
            "threshold": threshold,
            "max_batch": max_batch,
            "max_body_bytes": max_body_bytes,
            "request_timeout": request_timeout,
            "drain_seconds": drain_seconds,
            "canary_share": canary_share,
            "canary_min_requests": canary_min_requests,
            "reload_interval": reload_interval,
            "canary": False if no_canary else None,
            "access_log": access_log or None,
        }
    )
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
        fail(f"cannot start {command[0]}: {error}")
    raise typer.Exit(code)
