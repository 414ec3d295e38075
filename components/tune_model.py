"""Component: hyperparameter and architecture search with the Katib Experiment."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def tune_model(
    train_data: Input[Dataset],
    validation_data: Input[Dataset],
    feature_manifest: Input[Artifact],
    experiment_spec: str,
    tuning_backend: str,
    max_trial_count: int,
    parallel_trial_count: int,
    run_id: str,
    round_index: int,
    learning_rate: float,
    num_layers: int,
    units: int,
    dropout: float,
    batch_size: int,
    tuning_result: Output[Artifact],
    best_metrics: Output[Metrics],
) -> NamedTuple(  # type: ignore[valid-type]  # KFP reads the functional form
    "BestHyperparameters",
    [
        ("learning_rate", float),
        ("num_layers", int),
        ("units", int),
        ("dropout", float),
        ("batch_size", int),
    ],
):
    """Run the Katib Experiment and return the best trial's hyperparameters.

    Args:
        train_data: training rows the trials train on (Parquet).
        validation_data: validation rows the trials are scored on (Parquet).
        feature_manifest: ordered feature list (JSON).
        experiment_spec: path of the Katib Experiment YAML (katib/...).
        tuning_backend: "local" (Optuna, trials as processes) or "katib" (a Katib CR).
        max_trial_count: trial budget; 0 keeps the Experiment's own.
        parallel_trial_count: trials at once; 0 keeps the Experiment's own.
        run_id: the pipeline run id, appended to the Experiment name.
        round_index: 0 for the first search, k for the k-th re-tune after a failed gate.
        learning_rate: used when the Experiment does not search it.
        num_layers: used when the Experiment does not search it.
        units: used when the Experiment does not search it.
        dropout: used when the Experiment does not search it.
        batch_size: used when the Experiment does not search it.
        tuning_result: every trial and the optimal trial, Katib-shaped (JSON).
        best_metrics: the optimal trial's metrics.

    Returns:
        The best hyperparameters, typed for training.
    """
    import dataclasses
    import json
    from collections import namedtuple

    from kaizen.platform.settings import load_settings
    from kaizen.steps.tune_model import tune_step
    from kaizen.training.model import DEFAULT_HYPERPARAMETERS, SEARCHABLE

    result = tune_step(
        train_data.path,
        validation_data.path,
        feature_manifest.path,
        experiment_spec,
        tuning_result.path + ".work",
        settings=load_settings(),
        backend=tuning_backend,
        max_trial_count=max_trial_count,
        parallel_trial_count=parallel_trial_count,
        name_suffix=f"{run_id}-r{round_index}",
        run_id=run_id,
        round_index=round_index,
        defaults=dataclasses.replace(
            DEFAULT_HYPERPARAMETERS,
            learning_rate=learning_rate,
            num_layers=num_layers,
            units=units,
            dropout=dropout,
            batch_size=batch_size,
        ),
    )
    with open(tuning_result.path, "w") as handle:
        json.dump(result, handle, indent=2)
    optimal = result["experiment"].get("optimal_trial") or {}
    for metric in optimal.get("observation", {}).get("metrics", []):
        best_metrics.log_metric(metric["name"], float(metric["latest"]))
    tuning_result.metadata["best_trial"] = optimal.get("bestTrialName", "")
    best_hyperparameters = namedtuple("best_hyperparameters", list(SEARCHABLE))  # type: ignore[misc]
    return best_hyperparameters(**result["hyperparameters"])
