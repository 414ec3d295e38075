"""Registrations from parallel processes: no lost version, consistent aliases, one parent run.

Four real processes start on a fresh KAIZEN_HOME (so they also race to create MLflow's
SQLite schema), wait at a common start line, and each registers two versions.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kaizen.data.columns import LABEL
from kaizen.platform.settings import Settings

WORKERS = 4
REGISTRATIONS_PER_WORKER = 2

WORKER = r"""
import json, sys, time
from pathlib import Path

worker, export, ready, go = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
from kaizen.platform.settings import Settings
from kaizen.registry import PipelineRunTracker, register_challenger
settings = Settings(home=Path(sys.argv[6]))
import mlflow  # import before the start line, so the processes overlap in MLflow itself

ready.touch()
deadline = time.monotonic() + 300  # a hang guard, not a speed bound
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit("start signal never came")
    time.sleep(0.005)
shared = PipelineRunTracker("shared-run", settings=settings).run_id
results = []
for index in range(int(sys.argv[5])):
    tracker = PipelineRunTracker(f"run-{worker}-{index}", settings=settings)
    info = register_challenger(
        export, run_id=tracker.round_run_id(0), tags={"worker": str(worker)}, settings=settings
    )
    results.append({"version": info.version, "pipeline_run_id": info.pipeline_run_id})
print(json.dumps({"shared": shared, "results": results}))
"""


@pytest.fixture(scope="module")
def model_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from kaizen.training.model import HyperParameters
    from kaizen.training.train import train

    rng = np.random.default_rng(11)

    def frame(rows: int) -> pd.DataFrame:
        labels = (rng.random(rows) < 0.3).astype(np.int64)
        values = rng.normal(size=(rows, 2)) + labels[:, None] * 2.0
        data = pd.DataFrame(values, columns=["x1", "x2"])
        data[LABEL] = labels
        return data

    output = tmp_path_factory.mktemp("concurrency") / "model"
    train(
        frame(200),
        frame(100),
        ["x1", "x2"],
        HyperParameters(epochs=1, units=4, num_layers=1, batch_size=64, seed=11),
        output,
    )
    return output


def test_parallel_registrations_lose_no_version_and_keep_aliases_consistent(
    tmp_path: Path, settings: Settings, model_export: Path
) -> None:
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{worker}" for worker in range(WORKERS)]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                str(worker),
                str(model_export),
                str(ready[worker]),
                str(go),
                str(REGISTRATIONS_PER_WORKER),
                str(settings.home),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker in range(WORKERS)
    ]
    deadline = time.monotonic() + 300  # four processes importing MLflow on a loaded machine
    while not all(path.exists() for path in ready):
        assert time.monotonic() < deadline, "workers did not get ready in 300 s"
        assert all(process.poll() is None for process in processes), "a worker died early"
        time.sleep(0.02)
    go.touch()
    outputs = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-3000:]
        outputs.append(json.loads(stdout.strip().splitlines()[-1]))

    total = WORKERS * REGISTRATIONS_PER_WORKER
    returned = sorted(item["version"] for output in outputs for item in output["results"])
    assert returned == list(range(1, total + 1))
    assert len({output["shared"] for output in outputs}) == 1

    from mlflow import MlflowClient

    from kaizen.registry import ModelRegistry, PipelineRunTracker, load_model_version

    registry = ModelRegistry(settings)
    versions = registry.versions()
    assert [info.version for info in versions] == list(range(1, total + 1))
    expected_runs = {
        f"run-{worker}-{index}"
        for worker in range(WORKERS)
        for index in range(REGISTRATIONS_PER_WORKER)
    }
    assert {info.pipeline_run_id for info in versions} == expected_runs
    for info in versions:
        assert info.tags["worker"] == info.pipeline_run_id.split("-")[1]
        assert info.sha256 and info.tags["kaizen.content_digest"]
    champions = [info.version for info in versions if "champion" in info.aliases]
    challengers = [info.version for info in versions if "challenger" in info.aliases]
    assert champions == [1]
    # Registrations are serialized, so the last one holds the highest number and the alias.
    assert challengers == [total]
    uri = settings.tracking_uri
    shared_runs = MlflowClient(tracking_uri=uri).search_runs(
        [PipelineRunTracker("shared-run", settings=settings).experiment_id],
        filter_string="tags.`kaizen.pipeline_run_id` = 'shared-run'",
    )
    assert len(shared_runs) == 1
    model, info = load_model_version("challenger", settings)
    assert info.version == total and model.input_shape[-1] == 2
