"""Real models, a real registry and real server processes on 127.0.0.1 for serving tests.

Nothing here is a fake: ``export_tiny_model`` trains a small Keras model with the production
``train`` function, ``register`` registers it through the production registry, and
``ServerProcess`` starts ``python -m <module>`` and waits for KServe's readiness endpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from kaizen.data.columns import LABEL, RAW_COLUMNS

MODEL = "fraud-detector"
SERVER_MODULE = "kaizen.serving.server"
FEATURE_REPO = Path(__file__).resolve().parents[2] / "feature_repo"
DAY0 = pd.Timestamp("2026-05-01", tz="UTC")


def history(rows: Sequence[tuple[str, str, str, float, str, int, str]]) -> pd.DataFrame:
    """Transactions from (id, customer, merchant, amount, event offset from DAY0, is_fraud,
    label offset) rows, in the raw columns ingestion produces."""
    columns = ["transaction_id", "customer_id", "merchant_id", "amount", "event", "is_fraud"]
    return pd.DataFrame(list(rows), columns=[*columns, "label"]).assign(
        event_timestamp=lambda f: DAY0 + pd.to_timedelta(f["event"]),
        label_timestamp=lambda f: DAY0 + pd.to_timedelta(f["label"]),
    )[list(RAW_COLUMNS)]


HISTORY = history(
    [
        ("H1", "C1", "M1", 100.0, "1D 10h", 1, "5D 18h"),
        ("H2", "C1", "M2", 200.0, "3D 10h", 0, "3D 12h"),
        ("A", "C1", "M1", 20.0, "5D 12h", 0, "7D"),
        ("S1", "C2", "M1", 10.0, "4D 08h", 0, "4D 20h"),
        ("D", "C3", "M1", 40.0, "6D 09h", 0, "8D"),
    ]
)


def tiny_frame(rows: int, seed: int, features: Sequence[str]) -> pd.DataFrame:
    """Rows whose first two features rise with the label, so a tiny model learns them."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < 0.25).astype(np.int64)
    values = rng.normal(size=(rows, len(features)))
    values[:, 0] += 2.5 * labels
    values[:, 1] += 1.5 * labels
    frame = pd.DataFrame(values, columns=list(features))
    frame[LABEL] = labels
    return frame


def export_tiny_model(
    export: Path, features: Sequence[str], *, seed: int = 7, nan_weights: bool = False
) -> Path:
    """Train a small model on ``features`` into ``export`` (the production export layout).

    Args:
        export: Folder to write (must not hold another export).
        features: Feature names, in model order.
        seed: Training seed; different seeds give different weights (and digests).
        nan_weights: Replace every weight with NaN after training, as a diverged training run
            would: the model loads and verifies fine but every prediction is NaN.

    Returns:
        ``export``.
    """
    from kaizen.training.model import HyperParameters
    from kaizen.training.train import train

    train(
        tiny_frame(400, seed, features),
        tiny_frame(200, seed + 100, features),
        list(features),
        HyperParameters(
            learning_rate=0.02,
            epochs=10,
            patience=10,
            batch_size=64,
            units=8,
            num_layers=1,
            seed=seed,
        ),
        export,
    )
    if nan_weights:
        _poison(export)
    return export


def _poison(export: Path) -> None:
    import hashlib

    import keras

    from kaizen.training.train import MODEL_FILE, SHA256_FILE

    model = keras.saving.load_model(export / MODEL_FILE, safe_mode=True)
    model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
    model.save(export / MODEL_FILE)
    digest = hashlib.sha256((export / MODEL_FILE).read_bytes()).hexdigest()
    (export / SHA256_FILE).write_text(f"{digest}  {MODEL_FILE}\n")
    metadata_path = export / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata["sha256"] = digest
    metadata_path.write_text(json.dumps(metadata, indent=2) + "\n")


def register(home: Path, export: Path, run_name: str, features: Sequence[str]) -> Any:
    """Register ``export`` in the registry under ``home``; returns its ``ModelVersionInfo``.

    The first registered version becomes champion; later ones are challengers.
    """
    from kaizen.platform.settings import Settings
    from kaizen.registry import PipelineRunTracker, register_challenger

    settings = Settings(home=home)
    tracker = PipelineRunTracker(run_name, settings=settings)
    data = home / f"{run_name}-training.parquet"
    home.mkdir(parents=True, exist_ok=True)
    tiny_frame(10, 1, features).to_parquet(data)
    tracker.log_data(
        manifest={"feature_service": "fraud_model_v1", "feature_views": []},
        training_data=data,
        git_commit="abc123",
    )
    return register_challenger(export, run_id=tracker.round_run_id(0), settings=settings)


def materialize_history(
    home: Path, transactions: pd.DataFrame = HISTORY, repo: Path = FEATURE_REPO
) -> SimpleNamespace:
    """A feature repo (the real one by default) applied under ``home``, materialized over
    ``transactions``.

    Returns:
        ``store``, ``names`` (the default service's features), ``repo`` and ``moment``
        (the materialization end).
    """
    from kaizen.features import compute_feature_tables, feature_names, publish_feature_tables

    tables = compute_feature_tables(transactions)
    store = publish_feature_tables(tables, repo, home)
    return SimpleNamespace(
        store=store,
        names=feature_names(store),
        repo=repo,
        moment=tables.materialize_until,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_call(
    port: int,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    method: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, Any]:
    """One HTTP request to 127.0.0.1:port; returns (status, parsed JSON or text)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        headers={"Content-Type": "application/json", **(headers or {})},
        method=method or ("POST" if data is not None else "GET"),
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, _decode(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _decode(error.read())


def _decode(payload: bytes) -> Any:
    try:
        return json.loads(payload or b"null")
    except ValueError:
        return payload.decode("utf-8", "replace")


def metric(port: int, sample: str, **labels: str) -> float | None:
    """One sample of the server's /metrics whose labels include ``labels``.

    Returns:
        Its value, or None when the server exports no such series: an absent series is not
        a zero, so a check that something is 0 must see the series exported with 0.
    """
    from prometheus_client.parser import text_string_to_metric_families

    status, text = http_call(port, "/metrics")
    assert status == 200
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == sample and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return None


class ServerProcess:
    """``python -m module --http-port PORT *args`` with KAIZEN_HOME=home, ready on enter.

    Attributes:
        port: The HTTP port.
        process: The ``subprocess.Popen``.
        log_path: Its combined stdout/stderr.
    """

    def __init__(
        self,
        home: Path,
        args: Sequence[str] = (),
        *,
        module: str = SERVER_MODULE,
        port: int | None = None,
        ready_timeout: float = 90.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.home = home
        self.port = port or free_port()
        self.args = list(args)
        self.module = module
        self.ready_timeout = ready_timeout
        self.env = env or {}
        self.log_path = home / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, "--http-port", str(self.port), *self.args],
                env={**os.environ, "KAIZEN_HOME": str(self.home), **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_ready()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_ready(self, timeout: float | None = None) -> None:
        assert self.process is not None
        wait_for_http(
            self.process, self.port, "/v2/health/ready", self.log, timeout or self.ready_timeout
        )

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            stop_process(self.process)


def wait_for_http(
    process: subprocess.Popen[bytes], port: int, path: str, log: Callable[[], str], timeout: float
) -> None:
    """Poll ``GET path`` on 127.0.0.1 until it answers 200; fail, with the log, if the process
    exits or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"server exited ({process.returncode}): {log()}")
        try:
            if http_call(port, path, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"server not ready on {path}: {log()}")
        time.sleep(0.2)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate; kill if it is still running 30 s later."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
