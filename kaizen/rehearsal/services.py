"""The services a cluster has, each a real server on 127.0.0.1 with a free port.

Every service is a context manager: entering starts it and waits until it answers (polled,
with a generous deadline, never a fixed sleep), leaving stops it (SIGTERM to its process group,
SIGKILL after a deadline). Each writes its log to ``<workdir>/logs/<name>.log``. Credentials
are generated per rehearsal, held as :class:`pydantic.SecretStr` and handed to the servers
through their environment or standard input, never on a command line or in a log line.

===========  =====================================================  =====================
service      what                                                   ready when
===========  =====================================================  =====================
s3           moto's S3 server (in this process), bucket ``kaizen``  the bucket exists
mlflow       ``mlflow server``, SQLite store, artifacts proxied to  ``GET /health`` 200
             ``s3://kaizen/mlflow``
redis        Debian's ``redis-server``, password required           ``PING`` with it
registry     Debian's ``docker-registry`` (distribution 2.8)        ``GET /v2/`` 200
podman       ``podman system service``: the Docker API on a socket  ``GET /_ping``
===========  =====================================================  =====================
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import yaml
from pydantic import SecretStr

from kaizen.platform.processes import parent_death_signal

LOCALHOST = "127.0.0.1"
BUCKET = "kaizen"
REGION = "us-east-1"
# What installs the system binaries the services need (apt, as root).
DEPS_TARGET = "make rehearsal-deps"
START_DEADLINE_S = 180.0
STOP_DEADLINE_S = 30.0
POLL_INTERVAL_S = 0.2
REPO_ROOT = Path(__file__).resolve().parents[2]
# The engine settings `make images` uses (runc, ulimits the host allows): docker/containers.conf.
REPO_CONTAINERS_CONF = REPO_ROOT / "docker" / "containers.conf"
FALLBACK_CONTAINERS_CONF = """\
# Written by the cluster rehearsal (docker/containers.conf was missing): crun fails on this
# machine, and podman's default nofile limit is above the host's hard limit.
[engine]
runtime = "runc"

[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
"""


class ServiceError(RuntimeError):
    """A service did not start, did not answer in time, or a binary it needs is missing."""

    def __init__(self, service: str, message: str, log_path: Path | None = None) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service
        self.log_path = log_path


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now (the server binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind((LOCALHOST, 0))
        return int(probe.getsockname()[1])


def new_secret(nbytes: int = 24) -> SecretStr:
    """A fresh random credential (URL-safe, so it fits connection strings unquoted)."""
    return SecretStr(secrets.token_hex(nbytes))


def require_binary(name: str, package: str) -> str:
    """The path of ``name`` on PATH; a :class:`ServiceError` naming the make target if absent."""
    found = shutil.which(name)
    if found is None:
        raise ServiceError(
            name, f"`{name}` is not installed: run `{DEPS_TARGET}` (apt-installs {package})"
        )
    return found


def log_tail(path: Path | None, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file, or an empty string."""
    if path is None or not path.is_file():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:])


def wait_until(
    check: Callable[[], bool],
    *,
    what: str,
    deadline_s: float,
    gone: Callable[[], str | None] = lambda: None,
) -> float:
    """Poll ``check`` until it returns True; return the seconds it took.

    Args:
        check: True when ready; an exception counts as "not yet" (and is reported on timeout).
        what: named in the error.
        deadline_s: give up after this many seconds.
        gone: a reason when waiting is pointless (the process exited), else None.

    Raises:
        ServiceError: on the deadline or when ``gone`` gives a reason.
    """
    started = time.monotonic()
    last = "no answer"
    while True:
        try:
            if check():
                return time.monotonic() - started
        except Exception as error:
            last = f"{type(error).__name__}: {error}"
        reason = gone()
        if reason is not None:
            raise ServiceError(what, reason)
        if time.monotonic() - started > deadline_s:
            raise ServiceError(what, f"not ready after {deadline_s:.0f}s (last: {last})")
        time.sleep(POLL_INTERVAL_S)


def http_ok(url: str, timeout_s: float = 5.0) -> bool:
    """True when ``GET url`` answers 200."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return int(response.status) == 200


class Service:
    """A server started on entry and stopped on exit; subclasses define ``_launch``, ``_wait_ready``
    and ``_stop``."""

    name = "service"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.log_path = workdir / "logs" / f"{self.name}.log"
        self.seconds = 0.0  # from launch to ready
        self.port = 0
        self._launched_at = 0.0

    @property
    def address(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    def start(self) -> Self:
        """Launch the service and wait until it answers."""
        self.launch()
        self.wait_ready()
        return self

    def launch(self) -> None:
        """Start the server without waiting for it (several can then start side by side)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._launched_at = time.monotonic()
        try:
            self._launch()
        except BaseException:
            self.stop()
            raise

    def wait_ready(self) -> None:
        """Wait until the launched server answers; ``seconds`` is then its start time.

        Raises:
            ServiceError: it exited or did not answer before the deadline (it is stopped).
        """
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.seconds = time.monotonic() - self._launched_at

    def stop(self) -> None:
        self._stop()

    def _launch(self) -> None:
        raise NotImplementedError

    def _wait_ready(self) -> None:
        """Nothing to wait for unless a subclass says so."""

    def _stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class ProcessService(Service):
    """A server program run as a child process in its own process group."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.process: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None
        self._log: IO[bytes] | None = None

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _environment(self) -> Mapping[str, str]:
        return os.environ

    def _stdin(self) -> bytes | None:
        """Configuration sent on standard input (secrets go this way, not on the command line)."""
        return None

    def _ready(self) -> bool:
        raise NotImplementedError

    def _launch(self) -> None:
        command = self._command()
        stdin = self._stdin()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _stop
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(self._environment()),
            cwd=self.workdir,
            start_new_session=True,
            preexec_fn=parent_death_signal(signal.SIGTERM),
        )
        if stdin is not None and self.process.stdin is not None:
            self.process.stdin.write(stdin)
            self.process.stdin.close()

    def _wait_ready(self) -> None:
        try:
            wait_until(self._ready, what=self.name, deadline_s=START_DEADLINE_S, gone=self._exited)
        except ServiceError as error:
            raise ServiceError(self.name, str(error).split(": ", 1)[-1], self.log_path) from None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _exited(self) -> str | None:
        if self.process is None or self.process.poll() is None:
            return None
        return f"exited with status {self.process.returncode} before it was ready"

    def _stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        if process is not None:
            self.exit_code = process.returncode
        if self._log is not None:
            self._log.close()
            self._log = None


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


# --- S3 ----------------------------------------------------------------------------------


class S3Server(Service):
    """moto's S3 server, threaded in this process, with the bucket made by the minio client."""

    name = "s3"

    def __init__(self, workdir: Path, bucket: str = BUCKET, region: str = REGION) -> None:
        super().__init__(workdir)
        self.bucket = bucket
        self.region = region
        # moto accepts any credentials; fresh ones prove nothing relies on defaults.
        self.access_key = new_secret(10)
        self.secret_key = new_secret()
        self._server: Any = None
        self._handler: logging.Handler | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def client(self) -> Any:
        """A ``minio.Minio`` client of this server."""
        from minio import Minio

        return Minio(
            self.address,
            access_key=self.access_key.get_secret_value(),
            secret_key=self.secret_key.get_secret_value(),
            secure=False,
            region=self.region,
        )

    def _launch(self) -> None:
        from moto.server import ThreadedMotoServer

        # werkzeug logs one line per request (method, path, status): to our file, not to the
        # rehearsal's terminal. A presigned URL's query names the access key
        # (X-Amz-Credential=<key>/...); the filter masks both keys.
        werkzeug = logging.getLogger("werkzeug")
        self._handler = logging.FileHandler(self.log_path, encoding="utf-8")
        self._handler.addFilter(
            _Redacting([self.access_key.get_secret_value(), self.secret_key.get_secret_value()])
        )
        werkzeug.addHandler(self._handler)
        werkzeug.setLevel(logging.INFO)
        werkzeug.propagate = False
        self._server = ThreadedMotoServer(ip_address=LOCALHOST, port=0, verbose=False)
        self._server.start()
        self.port = int(self._server.get_host_and_port()[1])
        # moto keeps its data per process, not per server: an earlier server's buckets in
        # this process would show through. Start empty, as a new Minio would.
        reset = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(reset, timeout=60) as answer:
            answer.read()
        client = self.client()

        def bucket_exists() -> bool:
            if not client.bucket_exists(self.bucket):
                client.make_bucket(self.bucket)
            return bool(client.bucket_exists(self.bucket))

        wait_until(bucket_exists, what=self.name, deadline_s=START_DEADLINE_S)

    def _stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._handler is not None:
            logging.getLogger("werkzeug").removeHandler(self._handler)
            self._handler.close()
            self._handler = None

    def client_environment(self) -> dict[str, str]:
        """What boto3-based clients (MLflow's artifact store, Feast's S3 registry) read."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key.get_secret_value(),
            "AWS_SECRET_ACCESS_KEY": self.secret_key.get_secret_value(),
            "AWS_DEFAULT_REGION": self.region,
        }


class _Redacting(logging.Filter):
    """Replaces each secret in a record's message by ``***``."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [secret for secret in secrets if secret]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for secret in self.secrets:
            message = message.replace(secret, "***")
        record.msg, record.args = message, None
        return True


# --- MLflow ------------------------------------------------------------------------------


class MlflowServer(ProcessService):
    """``mlflow server`` with a SQLite store and artifacts proxied to ``s3://<bucket>/mlflow``.

    Clients need only the tracking URI: the server reads and writes the artifacts itself.
    """

    name = "mlflow"
    workers = 2  # the default, 4, costs about 1 GB on a 2-core machine for no gain here

    def __init__(self, workdir: Path, s3: S3Server) -> None:
        super().__init__(workdir)
        self.s3 = s3
        self.store_dir = workdir / "mlflow"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def artifacts_destination(self) -> str:
        return f"s3://{self.s3.bucket}/mlflow"

    def _command(self) -> list[str]:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        return mlflow_server_command(
            Path(sys.executable).parent / "mlflow",
            port=self.port,
            backend_store_uri=f"sqlite:///{self.store_dir / 'mlflow.db'}",
            artifacts_destination=self.artifacts_destination,
            workers=self.workers,
        )

    def _environment(self) -> Mapping[str, str]:
        return {**os.environ, **self.s3.client_environment(), "MLFLOW_S3_ENDPOINT_URL": self.s3.url}

    def _ready(self) -> bool:
        return http_ok(f"{self.url}/health")


def mlflow_server_command(
    mlflow: Path, *, port: int, backend_store_uri: str, artifacts_destination: str, workers: int
) -> list[str]:
    """The ``mlflow server`` command line (mlflow 3.17): bound to 127.0.0.1 and answering
    only Host headers naming it (the containers run on the host network)."""
    return [
        str(mlflow),
        "server",
        "--host",
        LOCALHOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--backend-store-uri",
        backend_store_uri,
        "--artifacts-destination",
        artifacts_destination,
        "--allowed-hosts",
        f"{LOCALHOST}:{port},localhost:{port}",
    ]


# --- Redis -------------------------------------------------------------------------------


class RedisServer(ProcessService):
    """Debian's ``redis-server``, nothing persisted, a generated password required."""

    name = "redis"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.password = new_secret()
        self.data_dir = workdir / "redis"

    def _command(self) -> list[str]:
        binary = require_binary("redis-server", "redis-server")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        return [binary, "-"]  # "-": the configuration comes on standard input

    def _stdin(self) -> bytes:
        return redis_config(self.port, self.data_dir, self.password).encode()

    def client(self, password: SecretStr | bool | None = True) -> Any:
        """A ``redis.Redis`` client; ``password=False`` connects without the password."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        secret = self.password if password is True else password or None
        return redis.Redis(
            host=LOCALHOST,
            port=self.port,
            password=secret.get_secret_value() if isinstance(secret, SecretStr) else None,
            socket_timeout=5,
            # redis-py retries a refused login (an AuthenticationError is a ConnectionError)
            # with backoff for about 10 s; the callers poll or expect the refusal.
            retry=Retry(NoBackoff(), 0),
        )

    def _ready(self) -> bool:
        with self.client() as client:
            return bool(client.ping())

    @property
    def connection_string(self) -> SecretStr:
        """Feast's Redis ``connection_string``: ``host:port,password=...`` (holds the secret)."""
        return SecretStr(f"{self.address},password={self.password.get_secret_value()}")


def redis_config(port: int, data_dir: Path, password: SecretStr) -> str:
    """redis.conf for the rehearsal: 127.0.0.1 only, nothing saved, a password required."""
    return "\n".join(
        [
            f"bind {LOCALHOST}",
            f"port {port}",
            'save ""',
            "appendonly no",
            f"dir {data_dir}",
            "daemonize no",
            'logfile ""',
            f"requirepass {password.get_secret_value()}",
            "",
        ]
    )


# --- image registry ----------------------------------------------------------------------


class ImageRegistry(ProcessService):
    """Debian's ``docker-registry`` (the CNCF distribution registry) over plain HTTP."""

    name = "registry"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.storage_dir = workdir / "registry"
        self.config_path = workdir / "registry.yml"

    def _command(self) -> list[str]:
        binary = require_binary("docker-registry", "docker-registry")
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config_path.write_text(registry_config(self.storage_dir, self.port))
        return [binary, "serve", str(self.config_path)]

    def _ready(self) -> bool:
        return http_ok(f"http://{self.address}/v2/")


def registry_config(storage_dir: Path, port: int) -> str:
    """The registry's config.yml: filesystem storage, 127.0.0.1 only, no auth (a rehearsal)."""
    config = {
        "version": 0.1,
        "log": {"level": "info", "fields": {"service": "registry"}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage_dir)},
            "delete": {"enabled": True},
        },
        "http": {
            "addr": f"{LOCALHOST}:{port}",
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
    }
    return yaml.safe_dump(config, sort_keys=False)


# --- podman's Docker API -----------------------------------------------------------------


class PodmanService(ProcessService):
    """``podman system service``: the Docker-compatible API on a unix socket.

    kfp.local's ``DockerRunner`` talks to it (``DOCKER_HOST=unix://<socket>``); the podman
    commands this package runs (push, run) get :meth:`podman_environment` so that both see
    the same engine settings and the registry as insecure.
    """

    name = "podman"

    def __init__(self, workdir: Path, registry_address: str) -> None:
        super().__init__(workdir)
        self.registry_address = registry_address
        self.socket_path = workdir / "podman.sock"
        self.registries_conf = workdir / "registries.conf"
        self.containers_conf = REPO_CONTAINERS_CONF

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def address(self) -> str:
        return self.docker_host

    def podman_environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "CONTAINERS_CONF": str(self.containers_conf),
            "CONTAINERS_REGISTRIES_CONF": str(self.registries_conf),
        }

    def _command(self) -> list[str]:
        binary = require_binary("podman", "podman buildah runc")
        self.registries_conf.write_text(registries_conf(self.registry_address))
        if not self.containers_conf.is_file():
            self.containers_conf = self.workdir / "containers.conf"
            self.containers_conf.write_text(FALLBACK_CONTAINERS_CONF)
        self.socket_path.unlink(missing_ok=True)
        return [binary, "system", "service", "--time=0", self.docker_host]

    def _environment(self) -> Mapping[str, str]:
        return self.podman_environment()

    def client(self) -> Any:
        """A ``docker.DockerClient`` of this socket."""
        from docker.client import DockerClient

        return DockerClient(base_url=self.docker_host, timeout=60)

    def _ready(self) -> bool:
        if not self.socket_path.exists():
            return False
        client = self.client()
        try:
            return bool(client.ping())
        finally:
            client.close()


def registries_conf(registry_address: str) -> str:
    """containers-registries.conf(5) for podman: the local registry over plain HTTP.

    Only fully qualified names are used (``127.0.0.1:<port>/...``, ``localhost/...``), so no
    short-name search list is needed.
    """
    return (
        "# Written by the cluster rehearsal: its local registry speaks plain HTTP.\n"
        "unqualified-search-registries = []\n"
        "\n"
        "[[registry]]\n"
        f'location = "{registry_address}"\n'
        "insecure = true\n"
    )


def run_logged(
    command: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` to completion, its output appended to ``log_path`` and returned."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        list(command),
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else None,
        check=False,
    )
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(command)}\n{done.stdout}{done.stderr}[exit {done.returncode}]\n")
    return done
