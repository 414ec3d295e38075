"""The whole cluster rehearsal, as `make rehearsal` runs it (slow: `make test-all`).

Needs the images (`make images`) and the services' packages (`make rehearsal-deps`); without
them it fails naming the make target. It runs ``python -m kaizen.rehearsal`` with a small
pipeline and checks what a user reads in its summary: every step succeeded in a container of
the pushed image, the model landed in the bucket as the champion, both serving protocols
answered, and nothing the rehearsal started is left running.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kaizen.rehearsal.run import COMPONENT_IMAGE, SERVING_IMAGE

pytestmark = pytest.mark.slow


def test_the_pipeline_runs_in_containers_and_the_serving_image_answers(tmp_path: Path) -> None:
    images = subprocess.run(
        ["podman", "image", "exists", COMPONENT_IMAGE], check=False, capture_output=True
    )
    assert images.returncode == 0, f"{COMPONENT_IMAGE} is missing: run `make images` first"
    assert (
        subprocess.run(
            ["podman", "image", "exists", SERVING_IMAGE], check=False, capture_output=True
        ).returncode
        == 0
    ), f"{SERVING_IMAGE} is missing: run `make images` first"

    done = subprocess.run(
        [
            sys.executable, "-m", "kaizen.rehearsal", "--workdir", str(tmp_path / "rehearsal"),
            "-p", "rows=4000", "-p", "epochs=3", "-p", "max_trial_count=2",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "250"},  # the summary's tables, one row per line
        timeout=3600,
        check=False,
    )  # fmt: skip
    summary = done.stdout
    assert done.returncode == 0, summary[-4000:] + done.stderr[-4000:]
    for step in ("ingest", "features", "tune", "train", "evaluate", "gate", "register"):
        assert re.search(rf"{step}\S*\s.*kaizen-component@sha256:.*SUCCE", summary), step
    assert "s3://kaizen/mlflow/" in summary and "champion" in summary
    # A request answered with anything but 200 fails its step.
    assert re.search(r"V1 entity request.*SUCCEEDED", summary)
    assert re.search(r"V2 infer request.*SUCCEEDED", summary)
    running = subprocess.run(
        ["podman", "ps", "--format", "{{.Image}}"], capture_output=True, text=True, check=True
    ).stdout
    assert "kaizen-serving" not in running and "kaizen-component" not in running
