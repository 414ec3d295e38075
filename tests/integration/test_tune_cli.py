"""`kaizen tune` from a fresh KAIZEN_HOME: real trial processes, live table, resume on rerun."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def _tune(repo_root: Path, kaizen_home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kaizen.cli", "tune", "--rows", "6000", *args],
        cwd=repo_root,
        env={**os.environ, "KAIZEN_HOME": str(kaizen_home), "COLUMNS": "160"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_tune_shows_trials_and_the_best_one_then_resumes(
    repo_root: Path, kaizen_home: Path
) -> None:
    first = _tune(repo_root, kaizen_home, "--max-trials", "2", "--parallel", "2")
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    assert "fraud-mlp-tpe: tpe, budget 2, 2 at once" in out
    assert out.count("Succeeded") + out.count("EarlyStopped") >= 2
    best = re.search(r"best trial (fraud-mlp-tpe-\w+): val_roc_auc (0\.\d+)", out)
    assert best, out
    assert float(best.group(2)) > 0.8
    assert "Materializing" not in out  # Feast's progress goes to the log

    trials_dir = kaizen_home / "tuning" / "fraud-mlp-tpe" / "trials"
    before = sorted(path.name for path in trials_dir.iterdir())
    again = _tune(repo_root, kaizen_home, "--max-trials", "2", "--parallel", "2")
    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(path.name for path in trials_dir.iterdir()) == before  # nothing rerun
    assert f"best trial {best.group(1)}" in again.stdout


def test_tune_refuses_an_invalid_experiment(
    repo_root: Path, kaizen_home: Path, tmp_path: Path
) -> None:
    source = (repo_root / "katib" / "fraud-mlp-tpe.yaml").read_text()
    bad = tmp_path / "fraud-mlp-tpe.yaml"
    bad.write_text(source.replace("algorithmName: tpe", "algorithmName: hyperopt-magic"))
    result = _tune(repo_root, kaizen_home, "--experiment", str(bad))
    assert result.returncode == 2
    assert "hyperopt-magic" in result.stderr and "algorithm" in result.stderr
