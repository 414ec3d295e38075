"""Two hosts registering against one MLflow tracking server, with no lock in common.

On a cluster every pipeline run's register step is a pod of its own: each has its own file
lock, and all of them share one ``mlflow server``. Here two real processes, each with its own
``KAIZEN_HOME`` (so each its own lock file), register through one real ``mlflow server`` on
127.0.0.1 from a common start line. Their first registrations race for the first champion;
several times both register the same model for the same pipeline run (a step retried while
its first attempt still runs), which must stay one version.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kaizen.platform.settings import Settings
from kaizen.registry._backend import store_config
from kaizen.rehearsal.services import MlflowServer, S3Server
from tests.support.serving import export_tiny_model, tiny_frame

FEATURES = ["amount_zscore", "merchant_risk", "velocity_1h"]
HOSTS = 2
OWN_RUNS = 3  # pipeline runs each host registers alone
SHARED_RUNS = 3  # pipeline runs both hosts register the same model for

WORKER = r"""
import json, sys, time
from pathlib import Path

home, uri, export, plan, ready, go = sys.argv[1:7]
from kaizen.platform.settings import Settings
from kaizen.registry import register_challenger
settings = Settings(home=Path(home), mlflow_tracking_uri=uri)
import mlflow  # imported before the start line, so the hosts overlap in MLflow itself

Path(ready).touch()
deadline = time.monotonic() + 300  # a hang guard, not a speed bound
while not Path(go).exists():
    if time.monotonic() > deadline:
        sys.exit("start signal never came")
    time.sleep(0.005)
results = []
for pipeline_run, run_id in json.loads(plan):
    info = register_challenger(export, run_id=run_id, settings=settings)
    results.append({"pipeline_run": pipeline_run, "version": info.version})
print(json.dumps(results))
"""


@pytest.fixture
def tracking_server(tmp_path: Path) -> Iterator[str]:
    """``mlflow server`` on 127.0.0.1 (two request workers, SQLite store, artifacts in S3)."""
    with (
        S3Server(tmp_path / "services") as s3,
        MlflowServer(tmp_path / "services", s3) as mlflow,
    ):
        yield mlflow.url


def _round_run(settings: Settings, pipeline_run: str, data: Path) -> str:
    from kaizen.registry import PipelineRunTracker

    tracker = PipelineRunTracker(pipeline_run, settings=settings)
    tracker.log_data(
        manifest={"feature_service": "fraud_model_v1", "feature_views": []},
        training_data=data,
        git_commit="abc123",
    )
    return tracker.round_run_id(0)


def test_two_hosts_sharing_a_tracking_server_get_one_first_champion_and_lose_no_version(
    tmp_path: Path, tracking_server: str
) -> None:
    from kaizen.registry import ModelRegistry

    export = export_tiny_model(tmp_path / "export", FEATURES)
    data = tmp_path / "training.parquet"
    tiny_frame(10, 1, FEATURES).to_parquet(data)
    setup = Settings(home=tmp_path / "setup", mlflow_tracking_uri=tracking_server)
    # The pipeline runs' MLflow runs exist before the race, as the steps before register
    # would have made them.
    shared = [(f"shared-{i}", _round_run(setup, f"shared-{i}", data)) for i in range(SHARED_RUNS)]
    homes = [tmp_path / f"host-{host}" for host in range(HOSTS)]
    plans = []
    for host in range(HOSTS):
        own = [
            (f"run-{host}-{i}", _round_run(setup, f"run-{host}-{i}", data)) for i in range(OWN_RUNS)
        ]
        # Alternate: the very first registrations race for the champion and for one version.
        plans.append([item for pair in zip(shared, own, strict=True) for item in pair])
    lock_files = {
        store_config(Settings(home=home, mlflow_tracking_uri=tracking_server)).lock_path
        for home in homes
    }
    assert len(lock_files) == HOSTS  # no lock in common: only the registry's rules hold

    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{host}" for host in range(HOSTS)]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                str(homes[host]),
                tracking_server,
                str(export),
                json.dumps(plans[host]),
                str(ready[host]),
                str(go),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for host in range(HOSTS)
    ]
    deadline = time.monotonic() + 300  # importing MLflow on a loaded machine
    while not all(path.exists() for path in ready):
        assert time.monotonic() < deadline, "hosts did not get ready in 300 s"
        assert all(process.poll() is None for process in processes), "a host died early"
        time.sleep(0.02)
    go.touch()
    outputs = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=900)
        assert process.returncode == 0, stderr[-3000:]
        outputs.append(json.loads(stdout.strip().splitlines()[-1]))

    registry = ModelRegistry(
        Settings(home=tmp_path / "reader", mlflow_tracking_uri=tracking_server)
    )
    versions = registry.versions()
    live = [info.version for info in versions]
    # One version per pipeline run: the shared ones once, each host's own once.
    by_run = {info.pipeline_run_id: info.version for info in versions}
    assert sorted(by_run) == sorted(
        [name for name, _ in shared]
        + [f"run-{host}-{i}" for host in range(HOSTS) for i in range(OWN_RUNS)]
    )
    assert len(live) == len(by_run)
    # Both hosts were told the same version for a shared run, and it is the live one.
    for output in outputs:
        for result in output:
            assert by_run[result["pipeline_run"]] == result["version"], result
    # No lost version: every number a host was given is live.
    assert {result["version"] for output in outputs for result in output} == set(live)
    # Exactly one champion, the first version; the challenger is the newest.
    champions = [info.version for info in versions if "champion" in info.aliases]
    challengers = [info.version for info in versions if "challenger" in info.aliases]
    assert champions == [min(live)]
    assert registry.get(min(live)).tags["kaizen.promoted_by"] == "first version"
    assert challengers == [max(live)]
    assert [info.version for info in versions if "kaizen.promoted_at" in info.tags] == [min(live)]
