"""A trial killed with SIGKILL mid-run resumes from its last completed epoch when rerun.

Real processes, real TensorFlow: the trial program runs in a subprocess with a checkpoint
directory, is killed once it has printed epoch 2, and is started again with the same
arguments. The rerun must continue after the last checkpointed epoch (not from epoch 1),
keep the history of the epochs before the kill and finish all epochs.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

EPOCHS = 8
RESUME_LINE = re.compile(r"completed_epochs=(\d+) resume_epoch=(\d+)")


def synthetic_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < 0.1).astype(np.int64)
    values = rng.normal(size=(rows, 6))
    values[:, 0] += 1.5 * labels
    values[:, 1] -= 1.0 * labels
    frame = pd.DataFrame(values, columns=[f"feature_{index}" for index in range(6)])
    frame["is_fraud"] = labels
    frame["transaction_id"] = [f"t{seed}-{index}" for index in range(rows)]
    return frame


def epoch_metrics(line: str) -> dict[str, float]:
    return {key: float(value) for key, value in (token.split("=") for token in line.split())}


@pytest.mark.timeout(180)
def test_trial_killed_mid_run_resumes_from_last_completed_epoch(
    tmp_path: Path, repo_root: Path
) -> None:
    # Enough rows that an epoch takes a good fraction of a second on 2 cores: the kill
    # after epoch 2 lands with several epochs still to run.
    synthetic_frame(30_000, seed=1).to_parquet(tmp_path / "train.parquet")
    synthetic_frame(5_000, seed=2).to_parquet(tmp_path / "validation.parquet")
    checkpoint_dir = tmp_path / "checkpoint"
    output_dir = tmp_path / "model"
    command = [
        sys.executable,
        "-m",
        "kaizen.training.trial",
        f"--epochs={EPOCHS}",
        f"--patience={EPOCHS}",
        "--batch-size=256",
        "--units=32",
        f"--train-data={tmp_path / 'train.parquet'}",
        f"--validation-data={tmp_path / 'validation.parquet'}",
        f"--output-dir={output_dir}",
        f"--checkpoint-dir={checkpoint_dir}",
    ]

    first_stderr = tmp_path / "first.stderr"
    with open(first_stderr, "w") as stderr:
        first = subprocess.Popen(
            command, cwd=repo_root, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
        assert first.stdout is not None
        first_lines: list[str] = []
        for line in first.stdout:
            first_lines.append(line.strip())
            if line.startswith("epoch=") and epoch_metrics(line)["epoch"] >= 2:
                first.send_signal(signal.SIGKILL)
                break
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL, (
        f"the first run was not killed mid-run: {first_lines}\n{first_stderr.read_text()[-3000:]}"
    )
    first_epochs = [epoch_metrics(line) for line in first_lines if line.startswith("epoch=")]
    last_printed = int(first_epochs[-1]["epoch"])
    assert not (output_dir / "metadata.json").exists()
    assert (checkpoint_dir / "training_state.json").is_file()

    second = subprocess.run(
        command, cwd=repo_root, capture_output=True, text=True, timeout=120, check=False
    )
    assert second.returncode == 0, second.stderr[-3000:]
    lines = second.stdout.splitlines()

    resume = RESUME_LINE.search(lines[0])
    assert resume, f"the rerun did not say it resumed: {lines[:2]}"
    completed = int(resume.group(1))
    # An epoch is printed only after its checkpoint is committed, so the rerun starts at
    # least after the last epoch the first run printed; and the kill was before the end.
    assert last_printed <= completed < EPOCHS
    assert int(resume.group(2)) == completed + 1
    second_epochs = [
        int(epoch_metrics(line)["epoch"]) for line in lines if line.startswith("epoch=")
    ]
    assert second_epochs == list(range(completed + 1, EPOCHS + 1))

    metadata = json.loads((output_dir / "metadata.json").read_text())
    assert metadata["epochs_run"] == EPOCHS
    assert metadata["resumed_from_epoch"] == completed
    history = metadata["history"]["val_roc_auc"]
    assert len(history) == EPOCHS
    # The epochs of the killed run are in the history with the values it printed.
    for logged in first_epochs:
        assert history[int(logged["epoch"]) - 1] == pytest.approx(logged["val_roc_auc"], rel=1e-5)
    assert max(history) > 0.85
    assert (output_dir / "model.keras").is_file()
    assert not checkpoint_dir.exists()
