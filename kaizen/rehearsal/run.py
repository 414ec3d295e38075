"""The rehearsal from start to end: services, images, the pipeline in containers, serving,
where everything landed, and a summary. ``python -m kaizen.rehearsal`` calls :func:`rehearse`.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kaizen.pipeline.runner import RunResult, TaskEvent, new_run_id
from kaizen.platform.names import DEFAULT_MODEL_NAME, DEFAULT_PIPELINE_NAME
from kaizen.platform.settings import Settings
from kaizen.rehearsal.environment import (
    container_environment,
    describe_environment,
    redact,
    secret_values,
)
from kaizen.rehearsal.images import PushedImage, forget_pulled, push_image
from kaizen.rehearsal.pipeline import (
    compile_pinned,
    run_in_containers,
    task_environment_variables,
    task_images,
)
from kaizen.rehearsal.services import (
    ImageRegistry,
    MlflowServer,
    PodmanService,
    ProcessService,
    RedisServer,
    S3Server,
    ServiceError,
    free_port,
    log_tail,
    require_binary,
)
from kaizen.rehearsal.serving import ServingContainer

DEFAULT_WORKDIR = Path(".rehearsal")
COMPONENT_IMAGE = "localhost/kaizen-component:dev"
SERVING_IMAGE = "localhost/kaizen-serving:dev"
TAIL_LINES = 40


@dataclass
class Options:
    """What ``python -m kaizen.rehearsal`` was asked."""

    workdir: Path = DEFAULT_WORKDIR
    component_image: str = COMPONENT_IMAGE
    serving_image: str = SERVING_IMAGE
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass
class Step:
    """One line of the summary: what ran, on which image (or the host), how long, how it ended."""

    name: str
    runs_on: str
    state: str = "RUNNING"
    seconds: float = 0.0
    detail: str = ""
    started: float = field(default_factory=time.monotonic)


@dataclass
class Failure:
    step: str
    error: str
    tail: str = ""
    log_path: Path | None = None


class StepFailed(Exception):
    """A step failed; the rehearsal skips to collecting what landed and stopping."""


class Rehearsal:
    """One rehearsal run; :meth:`run` does it, :meth:`print_summary` reports it."""

    def __init__(self, options: Options, console: Console) -> None:
        self.options = options
        self.workdir = options.workdir.absolute()
        self.console = console
        self.steps: list[Step] = []
        self.failures: list[Failure] = []
        self.secrets: set[str] = set()
        self.landed: list[tuple[str, str]] = []
        self.run_rows: list[tuple[str, str]] = []
        self.run_id = new_run_id()
        self.started = time.monotonic()
        self.s3: S3Server | None = None
        self.mlflow: MlflowServer | None = None
        self.redis: RedisServer | None = None
        self.podman: PodmanService | None = None
        self.registry: ImageRegistry | None = None
        self.result: RunResult | None = None

    @property
    def succeeded(self) -> bool:
        return not self.failures and all(step.state == "SUCCEEDED" for step in self.steps)

    # --- output ------------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.console.print(escape(redact(text, self.secrets)))

    def begin(self, name: str, runs_on: str = "host") -> Step:
        step = Step(name, runs_on)
        self.steps.append(step)
        self.say(f"  ▶ {name} …")
        return step

    def finish(self, step: Step, detail: str = "", seconds: float | None = None) -> None:
        step.state = "SUCCEEDED"
        step.seconds = time.monotonic() - step.started if seconds is None else seconds
        step.detail = detail
        self.say(f"  ✔ {step.name} ({_duration(step.seconds)}){'  ' + detail if detail else ''}")

    def fail(self, step: Step, error: BaseException | str, tail: str = "") -> StepFailed:
        step.state = "FAILED"
        step.seconds = time.monotonic() - step.started
        log_path = getattr(error, "log_path", None)
        if not tail and isinstance(log_path, Path):
            tail = log_tail(log_path, TAIL_LINES)
        message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        self.failures.append(Failure(step.name, message, tail, log_path))
        self.say(f"  ✘ {step.name} ({_duration(step.seconds)})")
        return StepFailed(step.name)

    @contextlib.contextmanager
    def step(self, name: str, runs_on: str = "host") -> Iterator[Step]:
        step = self.begin(name, runs_on)
        try:
            yield step
        except StepFailed:
            raise
        except Exception as error:
            raise self.fail(step, error) from error
        if step.state == "RUNNING":
            self.finish(step, step.detail)

    # --- the rehearsal -------------------------------------------------------------------

    def run(self) -> None:
        self.say(f"kaizen rehearsal {self.run_id}: work dir {self.workdir}")
        try:
            with self.step("prepare work dir") as step:
                _empty_workdir(self.workdir)
                step.detail = str(self.workdir)
        except StepFailed:
            return
        with contextlib.ExitStack() as stack:
            try:
                self._start_services(stack)
                component, serving = self._push_images(stack)
                self._run_pipeline(component)
                self._serve(stack, serving)
            except StepFailed:
                pass
            self._collect_landed()
            with contextlib.suppress(StepFailed), self.step("stop services"):
                stack.close()
        self._check_no_secret_in_logs()

    def _start_services(self, stack: contextlib.ExitStack) -> None:
        self.s3 = S3Server(self.workdir)
        stack.callback(self.s3.stop)
        with self.step("start s3", "host: moto S3 server (this process)") as step:
            self.s3.start()
            step.detail = self.s3.url
        self.secrets |= {
            self.s3.access_key.get_secret_value(),
            self.s3.secret_key.get_secret_value(),
        }
        self.redis = RedisServer(self.workdir)
        self.secrets.add(self.redis.password.get_secret_value())
        registry = ImageRegistry(self.workdir)
        self.mlflow = MlflowServer(self.workdir, self.s3)
        # Launched side by side, then waited for in turn: MLflow and podman take the longest,
        # and the others are ready meanwhile.
        launched: list[tuple[ProcessService, Step]] = []
        services: tuple[tuple[ProcessService, str], ...] = (
            (self.redis, "host: redis-server"),
            (registry, "host: docker-registry"),
            (self.mlflow, "host: mlflow server"),
        )
        for service, runs_on in services:
            launched.append((service, self._launch(stack, service, runs_on)))
        self.registry = registry
        self.podman = PodmanService(self.workdir, registry.address)
        launched.append((self.podman, self._launch(stack, self.podman, "host: podman service")))
        for service, step in launched:
            try:
                service.wait_ready()
            except Exception as error:
                raise self.fail(step, error) from error
            self.finish(step, service.address, seconds=service.seconds)

    def _launch(self, stack: contextlib.ExitStack, service: ProcessService, runs_on: str) -> Step:
        step = self.begin(f"start {service.name}", runs_on)
        stack.callback(service.stop)
        try:
            service.launch()
        except Exception as error:
            raise self.fail(step, error) from error
        return step

    def _push_images(self, stack: contextlib.ExitStack) -> tuple[PushedImage, PushedImage]:
        assert self.podman is not None and self.registry is not None
        pushed = []
        for local, name in (
            (self.options.component_image, "kaizen-component"),
            (self.options.serving_image, "kaizen-serving"),
        ):
            with self.step(f"push {name}", f"host: podman push {local}") as step:
                image = push_image(
                    local,
                    registry=self.registry.address,
                    name=name,
                    workdir=self.workdir,
                    env=self.podman.podman_environment(),
                )
                step.detail = image.reference
            pushed.append(image)
            stack.callback(
                forget_pulled,
                image.reference,
                workdir=self.workdir,
                env=self.podman.podman_environment(),
            )
        return pushed[0], pushed[1]

    def _environment(self) -> dict[str, str]:
        assert self.s3 is not None and self.mlflow is not None and self.redis is not None
        return container_environment(
            s3_endpoint=self.s3.address,
            s3_access_key=self.s3.access_key,
            s3_secret_key=self.s3.secret_key,
            mlflow_tracking_uri=self.mlflow.url,
            redis_address=self.redis.address,
            redis_password=self.redis.password,
            bucket=self.s3.bucket,
            region=self.s3.region,
        )

    def _run_pipeline(self, component: PushedImage) -> None:
        assert self.podman is not None
        pipeline_yaml = self.workdir / "training_pipeline.yaml"
        with self.step("compile pipeline", "host: kaizen compile") as step:
            compile_pinned(pipeline_yaml, component.reference)
            own_env = task_environment_variables(pipeline_yaml)
            step.detail = str(pipeline_yaml) + (
                f" (tasks set their own env, the rehearsal's wins: {own_env})" if own_env else ""
            )
        environment = self._environment()
        self.secrets |= secret_values(environment)
        (self.workdir / "environment.txt").write_text("\n".join(describe_environment(environment)))
        images = task_images(pipeline_yaml)
        task_steps: dict[str, Step] = {}

        def on_event(event: TaskEvent) -> None:
            if event.state == "RUNNING":
                task_steps[event.task] = self.begin(event.task, images.get(event.task, "?"))
                return
            step = task_steps.get(event.task) or self.begin(event.task, "?")
            if event.state == "SUCCESS":
                self.finish(step, seconds=event.seconds)
            else:
                step.state, step.seconds = "FAILED", event.seconds
                self.say(f"  ✘ {event.task} ({event.seconds:.1f}s)")

        self.say(f"  pipeline {pipeline_yaml.name}: every task in a container (DockerRunner)")
        self.result = run_in_containers(
            pipeline_yaml,
            settings=Settings(home=self.workdir),
            run_id=self.run_id,
            environment=environment,
            docker_host_address=self.podman.docker_host,
            shared_dir=self.workdir / "shared",
            arguments=self.options.arguments,
            on_event=on_event,
        )
        from kaizen.pipeline.summary import summarize_run

        summary = summarize_run(self.result)
        self.run_rows = summary.rows()
        if not self.result.succeeded:
            failed = [task for task, event in self.result.tasks.items() if event.state != "SUCCESS"]
            task = failed[0] if failed else "pipeline"
            lines = self.result.task_output.get(task, [])
            self.failures.append(
                Failure(
                    task,
                    self.result.error or "the pipeline failed",
                    "\n".join(lines[-TAIL_LINES:]),
                    self.result.log_path,
                )
            )
            raise StepFailed(task)
        if not summary.registered:
            verdict = "passed" if summary.gate.get("passed") else "failed"
            self.failures.append(
                Failure(
                    "register-model",
                    f"the gate {verdict} and no model was registered: nothing to serve",
                )
            )
            raise StepFailed("register-model")

    def _serve(self, stack: contextlib.ExitStack, serving: PushedImage) -> None:
        assert self.podman is not None
        container = ServingContainer(
            require_binary("podman", "podman buildah runc"),
            serving.reference,
            name=f"kaizen-rehearsal-serving-{self.run_id}",
            port=free_port(),
            environment=self._environment(),
            podman_environment=self.podman.podman_environment(),
            shared_dir=self.workdir / "shared",
            log_path=self.workdir / "logs" / "serving.log",
            model_name=DEFAULT_MODEL_NAME,
        )
        stack.callback(container.stop)
        with self.step("start serving", serving.reference) as step:
            try:
                container.start()
            except ServiceError as error:
                container.stop()  # its output goes to the log, for the tail
                error.log_path = container.log_path
                raise
            step.detail = container.url
        for name, send in (
            ("V1 entity request", container.predict_v1_entity),
            ("V2 infer request", container.infer_v2),
        ):
            with self.step(name, serving.reference) as step:
                status, body = send()
                step.detail = f"{status} {_short(body)}"
                if status != 200:
                    raise RuntimeError(f"answered {status}: {_short(body, 600)}")

    # --- where things landed --------------------------------------------------------------

    def _collect_landed(self) -> None:
        if self.s3 is None or self.s3.port == 0:
            return
        for label, collect in (
            ("model", self._landed_model),
            ("features", self._landed_features),
            ("run records", self._landed_runs),
            ("bucket", self._landed_bucket),
        ):
            try:
                self.landed.extend(
                    (label if i == 0 else "", text) for i, text in enumerate(collect())
                )
            except Exception as error:
                self.landed.append((label, f"unavailable: {type(error).__name__}: {error}"))
        if self.result is not None:
            self.landed.append(("pipeline root", str(self.result.run_dir or "")))
            self.landed.append(("run log", str(self.result.log_path)))

    def _objects(self, prefix: str) -> list[Any]:
        assert self.s3 is not None
        return list(self.s3.client().list_objects(self.s3.bucket, prefix=prefix, recursive=True))

    def _landed_model(self) -> list[str]:
        if self.mlflow is None or self.s3 is None or not self.mlflow.running:
            return ["no MLflow server"]
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=self.mlflow.url)
        versions = client.search_model_versions(f"name='{DEFAULT_MODEL_NAME}'")
        if not versions:
            return [f"no version of {DEFAULT_MODEL_NAME} registered at {self.mlflow.url}"]
        aliases = client.get_registered_model(DEFAULT_MODEL_NAME).aliases
        lines = []
        for version in sorted(versions, key=lambda v: int(v.version)):
            named = [alias for alias, number in aliases.items() if str(number) == version.version]
            location = self._artifact_location(client, str(version.source))
            objects = self._objects(location.removeprefix(f"s3://{self.s3.bucket}/") + "/")
            size = sum(obj.size or 0 for obj in objects)
            lines.append(
                f"{DEFAULT_MODEL_NAME} v{version.version} ({', '.join(named) or 'no alias'}), "
                f"MLflow run {version.run_id} at {self.mlflow.url}"
            )
            lines.append(f"{location}: {len(objects)} objects, {size / 1e6:.1f} MB")
        experiment = client.get_experiment_by_name(DEFAULT_PIPELINE_NAME)
        if experiment is not None:
            runs = client.search_runs([experiment.experiment_id], max_results=1000)
            lines.append(f"experiment {DEFAULT_PIPELINE_NAME}: {len(runs)} MLflow runs")
        return lines

    def _artifact_location(self, client: Any, source: str) -> str:
        """The bucket location of a model version's artifacts (proxied by the server)."""
        assert self.s3 is not None
        location = source
        if source.startswith("models:/"):
            location = client.get_logged_model(source.split("/")[1]).artifact_location
        if location.startswith("mlflow-artifacts:"):
            path = location.removeprefix("mlflow-artifacts:").lstrip("/")
            return f"s3://{self.s3.bucket}/mlflow/{path}"
        return str(location)

    def _landed_features(self) -> list[str]:
        assert self.s3 is not None
        lines = []
        registry = self._objects("feast/")
        if registry:
            lines += [
                f"s3://{self.s3.bucket}/{obj.object_name} ({obj.size} bytes)" for obj in registry
            ]
        else:
            lines.append(f"nothing under s3://{self.s3.bucket}/feast/")
        if self.redis is not None and self.redis.running:
            with self.redis.client() as client:
                lines.append(f"Redis {self.redis.address}: {client.dbsize()} keys")
        shared = self.workdir / "shared"
        files = [path for path in shared.rglob("*") if path.is_file()] if shared.is_dir() else []
        lines.append(f"{shared}: {len(files)} files")
        return lines

    def _landed_runs(self) -> list[str]:
        assert self.s3 is not None
        records = self._objects(f"runs/{self.run_id}/")
        if not records:
            return [f"nothing under s3://{self.s3.bucket}/runs/{self.run_id}/"]
        return [f"s3://{self.s3.bucket}/{obj.object_name}" for obj in records]

    def _landed_bucket(self) -> list[str]:
        assert self.s3 is not None
        counts: dict[str, list[int]] = {}
        for obj in self._objects(""):
            top = str(obj.object_name).split("/", 1)[0]
            entry = counts.setdefault(top, [0, 0])
            entry[0] += 1
            entry[1] += obj.size or 0
        return [
            f"{top}/: {count} objects, {size / 1e6:.1f} MB"
            for top, (count, size) in sorted(counts.items())
        ] or ["empty"]

    def _check_no_secret_in_logs(self) -> None:
        leaked = [
            path
            for path in sorted(self.workdir.rglob("*"))
            if path.is_file()
            and path.suffix in (".log", ".txt", ".yml", ".yaml", ".conf")
            and any(secret in path.read_text(errors="replace") for secret in self.secrets)
        ]
        if leaked:
            self.failures.append(
                Failure("secrets", "a credential was written to " + ", ".join(map(str, leaked)))
            )

    # --- summary -------------------------------------------------------------------------

    def print_summary(self) -> None:
        state = "SUCCEEDED" if self.succeeded else "FAILED"
        steps = Table(title=f"rehearsal {self.run_id}: {state}", show_lines=False)
        for column in ("step", "runs on (image)", "time", "state"):
            steps.add_column(column, overflow="fold")
        for step in self.steps:
            colour = {"SUCCEEDED": "green", "FAILED": "red"}.get(step.state, "yellow")
            steps.add_row(
                escape(step.name),
                escape(short_image(step.runs_on)),
                _duration(step.seconds),
                f"[{colour}]{step.state}[/{colour}]",
            )
        self.console.print(steps)
        tables = [("pipeline run", self.run_rows), ("where things landed", self.landed)]
        for title, rows in tables:
            if not rows:
                continue
            table = Table(title=title, show_header=False)
            table.add_column("what", style="bold")
            table.add_column("value", overflow="fold")
            for label, text in rows:
                table.add_row(escape(label), escape(redact(text, self.secrets)))
            self.console.print(table)
        for failure in self.failures:
            self.say(f"FAILED: {failure.step}: {failure.error}")
            if failure.tail:
                self.say(f"--- last lines of {failure.log_path or failure.step} ---")
                self.say(failure.tail)
        minutes, seconds = divmod(time.monotonic() - self.started, 60)
        self.say(
            f"rehearsal {state.lower()} in {int(minutes)}m{seconds:02.0f}s; work dir {self.workdir}"
        )


WORKDIR_MARK = ".kaizen-rehearsal"


def _empty_workdir(workdir: Path) -> None:
    """Empty ``workdir`` (an earlier rehearsal's servers' state is stale) and mark it as ours.

    Raises:
        RuntimeError: it holds files and no earlier rehearsal made it: nothing is deleted.
    """
    if workdir.exists() and any(workdir.iterdir()):
        if not (workdir / WORKDIR_MARK).is_file():
            raise RuntimeError(
                f"{workdir} is not empty and was not made by a rehearsal: choose another "
                "--workdir (the rehearsal empties its work dir when it starts)"
            )
        shutil.rmtree(workdir)
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    (workdir / WORKDIR_MARK).write_text("made by python -m kaizen.rehearsal\n")


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"


def short_image(reference: str) -> str:
    """``repository@sha256:<12 hex>``: a reference pinned by digest, short enough for a table."""
    repository, separator, digest = reference.partition("@sha256:")
    return f"{repository}@sha256:{digest[:12]}" if separator else reference


def _short(body: Any, limit: int = 160) -> str:
    text = str(body)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def rehearse(options: Options, console: Console | None = None) -> int:
    """Run the rehearsal and print its summary; return the exit status (0: all succeeded)."""
    # Bound to the real stdout now: while the pipeline runs, kfp.local's output (sys.stdout
    # of that moment) goes to the run log, and the progress lines must not.
    rehearsal = Rehearsal(options, console or Console(file=sys.stdout))
    try:
        rehearsal.run()
    finally:
        rehearsal.print_summary()
    return 0 if rehearsal.succeeded else 1
