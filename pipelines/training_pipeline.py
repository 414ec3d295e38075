"""The training pipeline: ingest, features, train, evaluate, gate, publish; notify on exit.

``create_pipeline`` style: every input is a pipeline parameter with a default, so the same
compiled YAML runs on the embedded backend (``kaizen run``) and on Kubeflow Pipelines.
"""

from kfp import dsl

from components.build_features import build_features
from components.evaluate_model import evaluate_model
from components.gate_model import gate_model
from components.ingest_data import ingest_data
from components.notify_run import notify_run
from components.publish_model import publish_model
from components.train_model import train_model

PIPELINE_NAME = "kaizen-training"


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Ingest card transactions, build Feast features, train, evaluate, gate, publish.",
)
def training_pipeline(
    source_uri: str = "",
    seed: int = 42,
    rows: int = 20000,
    customers: int = 400,
    merchants: int = 80,
    days: int = 35,
    fraud_rate: float = 0.02,
    drift: float = 0.0,
    feature_repo: str = "feature_repo",
    validation_days: int = 5,
    test_days: int = 5,
    warmup_days: int = 7,
    learning_rate: float = 0.001,
    num_layers: int = 2,
    units: int = 64,
    dropout: float = 0.1,
    batch_size: int = 256,
    epochs: int = 15,
    patience: int = 3,
    decision_threshold: float = 0.5,
    min_accuracy: float = 0.80,
    min_roc_auc: float = 0.90,
    min_recall: float = 0.50,
    model_name: str = "fraud-detector",
    webhook_url: str = "",
) -> None:
    """Continuous-training pipeline for the fraud model.

    Args:
        source_uri: CSV or Parquet transactions (path or file:// URI); empty generates data.
        seed: seed for data generation and training.
        rows: synthetic transactions to generate.
        customers: synthetic customers.
        merchants: synthetic merchants.
        days: days of synthetic history.
        fraud_rate: share of fraud in synthetic data.
        drift: strength of drift injected into synthetic data.
        feature_repo: path of the Feast feature repository.
        validation_days: days in the validation window.
        test_days: days in the test window (the latest).
        warmup_days: first days left out while windowed features fill up.
        learning_rate: Adam learning rate.
        num_layers: hidden layers.
        units: units per hidden layer.
        dropout: dropout rate.
        batch_size: training batch size.
        epochs: maximum training epochs.
        patience: early-stopping patience in epochs.
        decision_threshold: fraud score threshold for the decision metrics.
        min_accuracy: gate: lowest accepted accuracy.
        min_roc_auc: gate: lowest accepted ROC-AUC.
        min_recall: gate: lowest accepted recall.
        model_name: name the model is published under.
        webhook_url: http(s) URL notified when the run ends; empty for log only.
    """
    notify_task = notify_run(webhook_url=webhook_url)
    notify_task.set_caching_options(False)
    notify_task.set_display_name("notify")

    with dsl.ExitHandler(notify_task, name="training"):
        ingest_task = ingest_data(
            source_uri=source_uri,
            seed=seed,
            rows=rows,
            customers=customers,
            merchants=merchants,
            days=days,
            fraud_rate=fraud_rate,
            drift=drift,
        )
        features_task = build_features(
            transactions=ingest_task.outputs["transactions"],
            feature_repo=feature_repo,
            validation_days=validation_days,
            test_days=test_days,
            warmup_days=warmup_days,
        )
        # Feast apply + materialize write the online store: a cached result would skip that.
        features_task.set_caching_options(False)
        train_task = train_model(
            train_data=features_task.outputs["train_data"],
            validation_data=features_task.outputs["validation_data"],
            feature_manifest=features_task.outputs["feature_manifest"],
            learning_rate=learning_rate,
            num_layers=num_layers,
            units=units,
            dropout=dropout,
            batch_size=batch_size,
            epochs=epochs,
            patience=patience,
            seed=seed,
        )
        train_task.set_cpu_limit("2").set_memory_limit("4G")
        evaluate_task = evaluate_model(
            model=train_task.outputs["model"],
            test_data=features_task.outputs["test_data"],
            feature_manifest=features_task.outputs["feature_manifest"],
            decision_threshold=decision_threshold,
        )
        gate_task = gate_model(
            evaluation=evaluate_task.outputs["evaluation"],
            min_accuracy=min_accuracy,
            min_roc_auc=min_roc_auc,
            min_recall=min_recall,
        )
        with dsl.If(gate_task.outputs["Output"] == "pass", name="gate-passed"):
            publish_task = publish_model(
                model=train_task.outputs["model"],
                report=evaluate_task.outputs["report"],
                decision=gate_task.outputs["decision"],
                evaluation=evaluate_task.outputs["evaluation"],
                feature_manifest=features_task.outputs["feature_manifest"],
                model_name=model_name,
            )
            publish_task.set_caching_options(False)
