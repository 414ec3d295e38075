"""The serving image as a container on the host network, and the requests the rehearsal sends.

The container gets the pipeline's environment, so it reads the champion from the MLflow
server (artifacts proxied from the bucket) and entity features from Redis through Feast's
registry in the bucket, as an InferenceService would. Routes: docs/serving.md.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kaizen.rehearsal.environment import SHARED_MOUNT
from kaizen.rehearsal.services import (
    LOCALHOST,
    START_DEADLINE_S,
    STOP_DEADLINE_S,
    http_ok,
    run_logged,
    wait_until,
)

# The server loads TensorFlow, Feast and the model before it is ready (10-20 s on a laptop,
# more while the pipeline's containers are still being cleaned up).
READY_DEADLINE_S = max(START_DEADLINE_S, 300.0)
STATE_FORMAT = "{{.State.Status}} {{.State.ExitCode}}"
ENTITY_INSTANCE = {"customer_id": "C0001", "merchant_id": "M001", "amount": 42.5}


def serving_run_command(
    podman: str,
    reference: str,
    *,
    name: str,
    port: int,
    variables: list[str],
    shared_dir: Path,
) -> list[str]:
    """``podman run -d`` of the serving image on the host network.

    Each variable is passed by name only (``-e NAME``): podman copies its value from its own
    environment, so no credential appears on a command line.
    """
    # --no-healthcheck: podman runs the image's HEALTHCHECK from systemd timers, absent here;
    # the rehearsal polls the same readiness route itself, as a kubelet's probe would.
    command = [podman, "run", "-d", "--name", name, "--network", "host", "--no-healthcheck"]
    for variable in sorted(variables):
        command += ["-e", variable]
    command += ["-v", f"{shared_dir}:{SHARED_MOUNT}:ro", reference]
    command += ["kaizen", "serve", "--host", LOCALHOST, "--port", str(port), "--no-supervise"]
    return command


def http_json(
    url: str, body: Any = None, timeout_s: float = 30.0
) -> tuple[int, Any, dict[str, str]]:
    """``(status, JSON body, headers)`` of a GET (``body`` None) or a JSON POST."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"} if data else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            raw = response.read()
            status, headers = int(response.status), dict(response.headers)
    except urllib.error.HTTPError as error:
        raw, status, headers = error.read(), int(error.code), dict(error.headers)
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return status, parsed, headers


class ServingContainer:
    """The serving image run with ``podman run -d``; stopped (and removed) on exit."""

    def __init__(
        self,
        podman: str,
        reference: str,
        *,
        name: str,
        port: int,
        environment: Mapping[str, str],
        podman_environment: Mapping[str, str],
        shared_dir: Path,
        log_path: Path,
        model_name: str,
    ) -> None:
        self.podman = podman
        self.reference = reference
        self.name = name
        self.port = port
        self.environment = dict(environment)
        self.podman_environment = dict(podman_environment)
        self.shared_dir = shared_dir
        self.log_path = log_path
        self.model_name = model_name
        self.started = False

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def start(self) -> float:
        """Run the container and wait until it is ready; return the seconds it took.

        Raises:
            ServiceError: it exited, or was not ready in time.
            RuntimeError: podman refused to run it.
        """
        started = time.monotonic()
        command = serving_run_command(
            self.podman,
            self.reference,
            name=self.name,
            port=self.port,
            variables=list(self.environment),
            shared_dir=self.shared_dir,
        )
        done = run_logged(command, self.log_path, {**self.podman_environment, **self.environment})
        if done.returncode != 0:
            raise RuntimeError(f"podman run failed:\n{done.stderr.strip()[-2000:]}")
        self.started = True
        wait_until(
            lambda: http_ok(f"{self.url}/v2/health/ready"),
            what="serving",
            deadline_s=READY_DEADLINE_S,
            gone=self._exited,
        )
        return time.monotonic() - started

    def _exited(self) -> str | None:
        done = subprocess.run(
            [self.podman, "container", "inspect", "-f", STATE_FORMAT, self.name],
            capture_output=True,
            text=True,
            env=self.podman_environment,
            check=False,
        )
        status, _, code = done.stdout.strip().partition(" ")
        if done.returncode == 0 and status in ("created", "running"):
            return None
        return f"the serving container is {status or 'gone'} (exit status {code or '?'})"

    def predict_v1_entity(self) -> tuple[int, Any]:
        """One V1 entity request (customer and merchant ids, amount): features from Feast."""
        status, body, _ = http_json(
            f"{self.url}/v1/models/{self.model_name}:predict", {"instances": [ENTITY_INSTANCE]}
        )
        return status, body

    def infer_v2(self) -> tuple[int, Any]:
        """One V2 request: a row of zeros as wide as the model's ``features`` input."""
        status, metadata, _ = http_json(f"{self.url}/v2/models/{self.model_name}")
        if status != 200:
            return status, metadata
        width = int(metadata["inputs"][0]["shape"][-1])
        request = {
            "id": "rehearsal-1",
            "inputs": [
                {"name": "features", "datatype": "FP32", "shape": [1, width], "data": [0] * width}
            ],
        }
        status, body, _ = http_json(f"{self.url}/v2/models/{self.model_name}/infer", request)
        return status, body

    def stop(self) -> None:
        """Keep its output in the log, stop it (SIGTERM, SIGKILL after a deadline), remove it."""
        if not self.started:
            return
        logs = subprocess.run(
            [self.podman, "logs", self.name],
            capture_output=True,
            text=True,
            env=self.podman_environment,
            check=False,
        )
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(logs.stdout + logs.stderr)
        run_logged(
            [self.podman, "stop", "-t", str(int(STOP_DEADLINE_S)), self.name],
            self.log_path,
            self.podman_environment,
        )
        run_logged([self.podman, "rm", "-f", self.name], self.log_path, self.podman_environment)
        self.started = False
