"""Step: run the Katib Experiment (locally on Optuna, or as a Katib CR); return the best trial."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kaizen.platform.fileio import atomic_path, write_json_atomic
from kaizen.steps._io import read_json, tracker

if TYPE_CHECKING:
    from kaizen.platform.settings import Settings
    from kaizen.training.model import HyperParameters


def tune_step(
    train_path: str | os.PathLike[str],
    validation_path: str | os.PathLike[str],
    manifest_path: str | os.PathLike[str],
    experiment_path: str | os.PathLike[str],
    work_dir: str | os.PathLike[str],
    *,
    settings: Settings,
    backend: str = "local",
    max_trial_count: int = 0,
    parallel_trial_count: int = 0,
    name_suffix: str = "",
    image: str = "",
    timeout_s: float = 3600.0,
    shared_data_dir: str | os.PathLike[str] = "/mnt/data",
    defaults: HyperParameters | None = None,
    run_id: str = "",
    round_index: int = 0,
) -> dict[str, Any]:
    """Run the Katib Experiment (locally on Optuna, or as a Katib CR) and return the best trial.

    Args:
        train_path: training rows (Parquet) the trials train on.
        validation_path: validation rows (Parquet) the trials report metrics on.
        manifest_path: feature manifest; its ordered feature list goes to the trials.
        experiment_path: the Katib Experiment YAML.
        work_dir: where the local executor keeps trials and its resumable record.
        settings: platform settings (the MLflow tracker's store).
        backend: ``local`` (Optuna, trial processes here) or ``katib`` (the cluster).
        max_trial_count: trial budget; 0 keeps the Experiment's own.
        parallel_trial_count: trials at once; 0 keeps the Experiment's own.
        name_suffix: appended to the Experiment name (a run id), so runs never collide.
        image: trial image for the cluster; empty keeps the Experiment's own.
        timeout_s: how long the cluster backend waits for the Experiment.
        shared_data_dir: cluster backend: the volume this step and the trial pods both mount
            (the Experiment's ``/mnt/data``); the data is staged under ``<name>/`` in it.
        defaults: hyperparameters for anything the Experiment does not search (default:
            ``kaizen.training.model.DEFAULT_HYPERPARAMETERS``).
        run_id: pipeline run id; every trial becomes a nested MLflow run of its round.
        round_index: 0 for the first search, k for the k-th re-tune.

    Returns:
        ``experiment`` (Katib-shaped result), ``best_parameters`` (Katib strings) and
        ``hyperparameters`` (typed, ready for training: the searchable fields).
    """
    from kaizen.training.model import DEFAULT_HYPERPARAMETERS, SEARCHABLE
    from kaizen.tuning.spec import apply_overrides, load_experiment

    if backend not in ("local", "katib"):
        raise ValueError(f"tuning backend must be 'local' or 'katib', got {backend!r}")
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    manifest = read_json(manifest_path)
    features_file = work / "features.json"
    write_json_atomic(features_file, list(manifest["feature_names"]))
    body = load_experiment(Path(experiment_path))
    overrides: dict[str, Any] = {
        "name_suffix": name_suffix or None,
        "max_trial_count": max_trial_count or None,
        "parallel_trial_count": parallel_trial_count or None,
    }
    if backend == "local":
        from kaizen.tuning.local import run_experiment

        body = apply_overrides(
            body,
            train_data=str(Path(train_path).absolute()),
            validation_data=str(Path(validation_path).absolute()),
            features_file=str(features_file.absolute()),
            **overrides,
        )
        result = run_experiment(body, work_dir=work)
    else:
        from kaizen.tuning.katib import KatibLauncher

        name = apply_overrides(body, name_suffix=overrides["name_suffix"])["metadata"]["name"]
        staged = Path(shared_data_dir) / name
        staged.mkdir(parents=True, exist_ok=True)
        for source, target in (
            (Path(train_path), staged / "train.parquet"),
            (Path(validation_path), staged / "validation.parquet"),
            (features_file, staged / "features.json"),
        ):
            with atomic_path(target) as tmp:
                tmp.write_bytes(source.read_bytes())
        result = KatibLauncher.in_cluster().run(
            body,
            image=image or None,
            train_data=str(staged / "train.parquet"),
            validation_data=str(staged / "validation.parquet"),
            features_file=str(staged / "features.json"),
            timeout_s=timeout_s,
            **overrides,
        )
    experiment = result.to_dict()
    run = tracker(run_id, settings)
    if run is not None:
        run.log_tuning(result, round_index=round_index)
    if not result.optimal_trial or not result.best_parameters():
        raise RuntimeError(
            f"tuning found no successful trial in experiment {result.name!r} "
            f"({result.status}: {result.reason})"
        )
    assignments = result.best_parameters()
    chosen = (defaults or DEFAULT_HYPERPARAMETERS).with_assignments(assignments).to_dict()
    return {
        "experiment": experiment,
        "best_parameters": assignments,
        "hyperparameters": {name: chosen[name] for name in SEARCHABLE},
    }
