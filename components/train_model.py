"""Component: train the Keras fraud model with the given hyperparameters."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train_model(
    train_data: Input[Dataset],
    validation_data: Input[Dataset],
    feature_manifest: Input[Artifact],
    learning_rate: float,
    num_layers: int,
    units: int,
    dropout: float,
    batch_size: int,
    epochs: int,
    patience: int,
    seed: int,
    run_id: str,
    round_index: int,
    model: Output[Model],
    training_metrics: Output[Metrics],
) -> None:
    """Train the model; early stopping on validation ROC-AUC.

    Args:
        train_data: training rows (Parquet).
        validation_data: validation rows (Parquet).
        feature_manifest: ordered feature list and feature service (JSON).
        learning_rate: Adam learning rate.
        num_layers: hidden layers.
        units: units per hidden layer.
        dropout: dropout after each hidden layer.
        batch_size: training batch size.
        epochs: maximum epochs.
        patience: epochs without validation improvement before stopping.
        seed: seed for weights, shuffling and dropout.
        run_id: the pipeline run id (its MLflow parent run).
        round_index: the tuning round this training belongs to.
        model: folder with model.keras, features.json and metadata.json (sha256, history).
        training_metrics: final training and validation metrics.
    """
    from kaizen.platform.settings import load_settings
    from kaizen.steps.train_model import train_step
    from kaizen.training.model import HyperParameters

    summary = train_step(
        train_data.path,
        validation_data.path,
        feature_manifest.path,
        model.path,
        settings=load_settings(),
        hyperparameters=HyperParameters(
            learning_rate=learning_rate,
            num_layers=num_layers,
            units=units,
            dropout=dropout,
            batch_size=batch_size,
            epochs=epochs,
            patience=patience,
            seed=seed,
        ),
        run_id=run_id,
        round_index=round_index,
    )
    model.metadata.update({"sha256": summary["sha256"], "framework": "keras"})
    for name, value in summary["metrics"].items():
        training_metrics.log_metric(name, float(value))
