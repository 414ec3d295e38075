"""The pipeline's steps as plain Python: files in, files out, a JSON-safe summary back.

Each KFP component in ``components/`` is a thin wrapper that maps artifact paths onto one of
these functions, so the steps are tested without KFP and the benchmark can run the very same
steps in one process. Heavy libraries (TensorFlow, Feast) are imported inside the functions.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kaizen.data import columns
from kaizen.fileio import atomic_path, write_json_atomic

TRAINING_FILE = "data.parquet"


def _read_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    return dict(json.loads(Path(path).read_text()))


def _write_parquet(frame: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def ingest_step(
    source_uri: str,
    output_path: str | os.PathLike[str],
    *,
    seed: int = 42,
    rows: int = 20_000,
    customers: int = 400,
    merchants: int = 80,
    days: int = 35,
    fraud_rate: float = 0.02,
    drift: float = 0.0,
) -> dict[str, Any]:
    """Generate (empty ``source_uri``) or load a user's transactions, validate, write Parquet.

    Raises:
        kaizen.data.ingest.DataSourceError: the source cannot be read.
        kaizen.data.ingest.DataValidationError: the data breaks the schema; nothing is written.
    """
    from kaizen.data.generator import GeneratorConfig
    from kaizen.data.ingest import ingest

    config = GeneratorConfig(
        seed=seed,
        rows=rows,
        customers=customers,
        merchants=merchants,
        days=days,
        fraud_rate=fraud_rate,
        drift=drift,
    )
    result = ingest(source_uri or None, config)
    _write_parquet(result.frame, Path(output_path))
    return {"source": result.source, "rows": result.rows, **result.summary}


def features_step(
    transactions_path: str | os.PathLike[str],
    feature_repo: str | os.PathLike[str],
    kaizen_home: str | os.PathLike[str],
    *,
    train_path: str | os.PathLike[str],
    validation_path: str | os.PathLike[str],
    test_path: str | os.PathLike[str],
    manifest_path: str | os.PathLike[str],
    validation_days: int = 5,
    test_days: int = 5,
    warmup_days: int = 7,
) -> dict[str, Any]:
    """Compute feature tables, apply the Feast repo, materialize, build the temporal splits."""
    import pandas as pd

    from kaizen.features import build_features

    transactions = pd.read_parquet(transactions_path)
    result = build_features(
        transactions,
        repo_path=Path(feature_repo),
        kaizen_home=Path(kaizen_home),
        validation_days=validation_days,
        test_days=test_days,
        warmup_days=warmup_days,
    )
    _write_parquet(result.train, Path(train_path))
    _write_parquet(result.validation, Path(validation_path))
    _write_parquet(result.test, Path(test_path))
    manifest = result.manifest()
    write_json_atomic(Path(manifest_path), manifest)
    return manifest


def train_step(
    train_path: str | os.PathLike[str],
    validation_path: str | os.PathLike[str],
    manifest_path: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    *,
    learning_rate: float = 1e-3,
    num_layers: int = 2,
    units: int = 64,
    dropout: float = 0.1,
    batch_size: int = 256,
    epochs: int = 15,
    patience: int = 3,
    seed: int = 42,
    checkpoint_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Train the Keras model on the training split; export ``model.keras`` and its metadata."""
    import pandas as pd

    from kaizen.training.model import HyperParameters
    from kaizen.training.train import train

    manifest = _read_json(manifest_path)
    hparams = HyperParameters(
        learning_rate=learning_rate,
        num_layers=num_layers,
        units=units,
        dropout=dropout,
        batch_size=batch_size,
        epochs=epochs,
        patience=patience,
        seed=seed,
    )
    result = train(
        pd.read_parquet(train_path),
        pd.read_parquet(validation_path),
        feature_names=list(manifest["feature_names"]),
        hparams=hparams,
        output_dir=Path(model_dir),
        checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None,
    )
    return result.summary()


def evaluate_step(
    model_dir: str | os.PathLike[str],
    test_path: str | os.PathLike[str],
    manifest_path: str | os.PathLike[str],
    *,
    evaluation_path: str | os.PathLike[str],
    report_path: str | os.PathLike[str],
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Score the latest time window; write the evaluation JSON and the HTML report."""
    import pandas as pd

    from kaizen.evaluation.metrics import evaluate_scores
    from kaizen.evaluation.report import write_html_report
    from kaizen.training.train import load_model, predict_proba

    model_metadata = _read_json(Path(model_dir) / "metadata.json")
    manifest = _read_json(manifest_path)
    feature_names = json.loads((Path(model_dir) / "features.json").read_text())
    model = load_model(model_dir, expected_sha256=model_metadata["sha256"])
    test = pd.read_parquet(test_path)
    scores = predict_proba(model, test, feature_names)
    labels = test[columns.LABEL].to_numpy()
    result = evaluate_scores(labels, scores, threshold=threshold)
    window = manifest.get("windows", {}).get("test", {})
    write_html_report(
        result,
        labels,
        scores,
        Path(report_path),
        title="Kaizen fraud model: evaluation on the latest window",
        context={
            "model sha256": model_metadata["sha256"],
            "feature service": manifest.get("feature_service", ""),
            "test window": f"{window.get('start', '?')} .. {window.get('end', '?')}",
            "test rows": len(test),
        },
    )
    evaluation = {"metrics": result.to_dict(), "test_window": window, "rows": len(test)}
    write_json_atomic(Path(evaluation_path), evaluation)
    return evaluation


def gate_step(
    evaluation_path: str | os.PathLike[str],
    decision_path: str | os.PathLike[str],
    *,
    min_accuracy: float = 0.80,
    min_roc_auc: float = 0.90,
    min_recall: float = 0.50,
) -> dict[str, Any]:
    """Decide pass or fail against the policy; write the decision with every reason."""
    from kaizen.evaluation.gate import GatePolicy, decide

    metrics = _read_json(evaluation_path)["metrics"]
    policy = GatePolicy(min_accuracy=min_accuracy, min_roc_auc=min_roc_auc, min_recall=min_recall)
    decision = decide(metrics, policy)
    payload = decision.to_dict()
    write_json_atomic(Path(decision_path), payload)
    return payload


def publish_step(
    model_dir: str | os.PathLike[str],
    report_path: str | os.PathLike[str],
    decision_path: str | os.PathLike[str],
    evaluation_path: str | os.PathLike[str],
    manifest_path: str | os.PathLike[str],
    *,
    model_name: str = "fraud-detector",
    run_name: str = "",
) -> dict[str, Any]:
    """Store model, report and metadata under a versioned key; a re-run publishes nothing twice.

    The version is derived from the model's content (config and weights, not its save date),
    so publishing the same model again, or a bit-identical retrain from the same inputs, finds
    the existing version and reports it instead of writing a duplicate.
    """
    from kaizen.storage import KeyExistsError, open_store
    from kaizen.training.digest import model_content_digest

    decision = _read_json(decision_path)
    if not decision.get("passed"):
        raise ValueError(f"refusing to publish: the gate decision in {decision_path} is 'fail'")
    metadata = _read_json(Path(model_dir) / "metadata.json")
    version = model_content_digest(Path(model_dir) / "model.keras")[:16]
    prefix = f"models/{model_name}/{version}"
    store = open_store()
    files = {
        "model.keras": Path(model_dir) / "model.keras",
        "features.json": Path(model_dir) / "features.json",
        "metadata.json": Path(model_dir) / "metadata.json",
        "report.html": Path(report_path),
        "decision.json": Path(decision_path),
        "evaluation.json": Path(evaluation_path),
        "features_manifest.json": Path(manifest_path),
    }
    already = store.exists(f"{prefix}/model.keras")
    written = []
    for name, path in files.items():
        try:
            store.put_file(f"{prefix}/{name}", path)
            written.append(name)
        except KeyExistsError:
            continue
    record = {
        "model_name": model_name,
        "version": version,
        "sha256": metadata["sha256"],
        "content_digest": version,
        "prefix": prefix,
        "model_uri": store.uri(f"{prefix}/model.keras"),
        "report_uri": store.uri(f"{prefix}/report.html"),
        "already_published": already,
        "written": written,
        "run_name": run_name,
    }
    return record


def notify_step(
    pipeline: str,
    run: str,
    state: str,
    error_message: str = "",
    webhook_url: str = "",
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Record how the run ended: a log line, and a webhook POST when configured."""
    from kaizen.monitoring.notify import Notification, notify

    succeeded = state.upper() in {"SUCCEEDED", "SUCCESS"}
    message = "run succeeded" if succeeded else f"run failed: {error_message or 'see task logs'}"
    record = notify(
        Notification(
            pipeline=pipeline, run=run, state=state, message=message, details=details or {}
        ),
        webhook_url or None,
    )
    return record.to_dict()


__all__ = [
    "evaluate_step",
    "features_step",
    "gate_step",
    "ingest_step",
    "notify_step",
    "publish_step",
    "train_step",
]
