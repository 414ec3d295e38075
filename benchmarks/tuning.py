"""Tuning: parallel trials vs one at a time, and medianstop vs none, on the real trial program.

Three runs of katib/fraud-mlp-tpe.yaml through the local executor, same data, same budget:
  A  parallelTrialCount 1, no early stopping   (baseline)
  B  parallelTrialCount 2, no early stopping   -> wall-time ratio B/A, target <= 0.65 on 2 cores
  C  parallelTrialCount 1, medianstop          -> trial-epochs C vs A, target >= 30 % fewer,
                                                 best objective within 0.01 of A's

    .venv/bin/python benchmarks/tuning.py [--trials 8] [--rows 20000]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TARGET_PARALLEL_RATIO = 0.65
TARGET_EPOCH_SAVING = 0.30
TARGET_OBJECTIVE_GAP = 0.01


def _run(body: dict[str, Any], work: Path) -> dict[str, Any]:
    from kaizen.tuning.local import run_experiment

    started = time.perf_counter()
    result = run_experiment(body, work_dir=work)
    seconds = time.perf_counter() - started
    objective = body["spec"]["objective"]["objectiveMetricName"]
    best = result.best_trial()
    return {
        "seconds": round(seconds, 2),
        "trials": len(result.trials),
        "statuses": sorted(trial.status for trial in result.trials),
        "trial_epochs": sum(len(trial.intermediate) for trial in result.trials),
        "best_objective": best.metrics.get(objective) if best else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--rows", type=int, default=20000)
    args = parser.parse_args()

    from kaizen.cli.tune import prepare_default_data
    from kaizen.platform.settings import Settings
    from kaizen.tuning.spec import apply_overrides, load_experiment

    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        os.environ["KAIZEN_HOME"] = str(home)
        with contextlib.redirect_stdout(io.StringIO()):
            data = prepare_default_data(
                Settings(home=home, feature_repo=REPO / "feature_repo"), rows=args.rows
            )
        base = load_experiment(REPO / "katib" / "fraud-mlp-tpe.yaml")
        base = apply_overrides(
            base,
            train_data=str(data["train"]),
            validation_data=str(data["validation"]),
            features_file=str(data["features"]),
            max_trial_count=args.trials,
            parallel_trial_count=1,
        )
        without_stopping = copy.deepcopy(base)
        without_stopping["spec"].pop("earlyStopping", None)
        parallel = copy.deepcopy(without_stopping)
        parallel["spec"]["parallelTrialCount"] = 2

        runs = {
            "A_sequential_no_stop": _run(without_stopping, home / "a"),
            "B_parallel2_no_stop": _run(parallel, home / "b"),
            "C_sequential_medianstop": _run(base, home / "c"),
        }

    a, b, c = (runs[key] for key in sorted(runs))
    parallel_ratio = b["seconds"] / a["seconds"]
    epoch_saving = 1 - c["trial_epochs"] / a["trial_epochs"]
    gap = (a["best_objective"] or 0.0) - (c["best_objective"] or 0.0)
    result = {
        "benchmark": "tuning",
        "measured_at": datetime.now(UTC).isoformat(),
        "trials": args.trials,
        "rows": args.rows,
        "runs": runs,
        "parallel_wall_time_ratio": round(parallel_ratio, 3),
        "medianstop_epoch_saving": round(epoch_saving, 3),
        "medianstop_objective_gap": round(gap, 4),
        "meets_targets": {
            "parallel": parallel_ratio <= TARGET_PARALLEL_RATIO,
            "medianstop_epochs": epoch_saving >= TARGET_EPOCH_SAVING,
            "medianstop_objective": gap <= TARGET_OBJECTIVE_GAP,
        },
        "cpu_count": os.cpu_count(),
    }
    print(
        f"A sequential, no early stopping: {a['seconds']:7.1f} s, {a['trial_epochs']} epochs, "
        f"best {a['best_objective']:.4f}"
    )
    print(
        f"B 2 in parallel, no stopping:    {b['seconds']:7.1f} s, {b['trial_epochs']} epochs, "
        f"best {b['best_objective']:.4f}"
    )
    print(
        f"C sequential, medianstop:        {c['seconds']:7.1f} s, {c['trial_epochs']} epochs, "
        f"best {c['best_objective']:.4f}  {c['statuses']}"
    )
    print(f"parallel wall-time ratio B/A: {parallel_ratio:.2f} (target <= {TARGET_PARALLEL_RATIO})")
    print(
        f"medianstop trial-epochs saved: {epoch_saving:.0%} (target >= {TARGET_EPOCH_SAVING:.0%}), "
        f"best objective gap {gap:+.4f} (target <= {TARGET_OBJECTIVE_GAP})"
    )
    out_dir = REPO / "benchmarks" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "tuning.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
