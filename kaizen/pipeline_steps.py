"""The pipeline's steps as plain Python: files in, files out, a JSON-safe summary back.

Each KFP component in ``components/`` is a thin wrapper that maps artifact paths onto one of
these functions, so the steps are tested without KFP and the benchmark can run the very same
steps in one process. Heavy libraries (TensorFlow, Feast) are imported inside the functions.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict
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


def _tracker(run_id: str) -> Any:
    """The MLflow parent run of pipeline run ``run_id``, or None when not tracking."""
    if not run_id:
        return None
    from kaizen.registry import PipelineRunTracker

    return PipelineRunTracker(run_id)


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
    run_id: str = "",
) -> dict[str, Any]:
    """Generate (empty ``source_uri``) or load a user's transactions, validate, write Parquet.

    With a ``run_id`` the data parameters are logged on the run's MLflow parent run.

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
    tracker = _tracker(run_id)
    if tracker is not None:
        tracker.log_pipeline_params(
            {"source_uri": source_uri, **({} if source_uri else asdict(config))}
        )
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
    run_id: str = "",
) -> dict[str, Any]:
    """Compute feature tables, apply the Feast repo, materialize, build the temporal splits.

    With a ``run_id`` the data fingerprints, windows and feature service go to MLflow.
    """
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
    tracker = _tracker(run_id)
    if tracker is not None:
        tracker.log_data(
            manifest=manifest,
            training_data=train_path,
            transactions=transactions_path,
            git_commit=os.environ.get("KAIZEN_GIT_COMMIT") or None,
        )
    return manifest


HPARAM_TYPES: dict[str, type] = {
    "learning_rate": float,
    "num_layers": int,
    "units": int,
    "dropout": float,
    "batch_size": int,
}


def best_hyperparameters(
    assignments: Mapping[str, str], defaults: Mapping[str, float | int]
) -> dict[str, float | int]:
    """Typed training hyperparameters from Katib's string assignments, defaults for the rest.

    Raises:
        ValueError: an assignment is not a number of its hyperparameter's type.
    """
    chosen: dict[str, float | int] = {}
    for name, kind in HPARAM_TYPES.items():
        if name not in assignments:
            chosen[name] = kind(defaults[name])
            continue
        raw = assignments[name]
        try:
            number = float(raw)
        except ValueError:
            raise ValueError(f"tuned {name}={raw!r} is not a number") from None
        if kind is int and not number.is_integer():
            raise ValueError(f"tuned {name}={raw!r} is not a whole number")
        chosen[name] = int(number) if kind is int else number
    return chosen


def tune_step(
    train_path: str | os.PathLike[str],
    validation_path: str | os.PathLike[str],
    manifest_path: str | os.PathLike[str],
    experiment_path: str | os.PathLike[str],
    work_dir: str | os.PathLike[str],
    *,
    backend: str = "local",
    max_trial_count: int = 0,
    parallel_trial_count: int = 0,
    name_suffix: str = "",
    image: str = "",
    timeout_s: float = 3600.0,
    shared_data_dir: str | os.PathLike[str] = "/mnt/data",
    defaults: Mapping[str, float | int] | None = None,
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
        backend: ``local`` (Optuna, trial processes here) or ``katib`` (the cluster).
        max_trial_count: trial budget; 0 keeps the Experiment's own.
        parallel_trial_count: trials at once; 0 keeps the Experiment's own.
        name_suffix: appended to the Experiment name (a run id), so runs never collide.
        image: trial image for the cluster; empty keeps the Experiment's own.
        timeout_s: how long the cluster backend waits for the Experiment.
        shared_data_dir: cluster backend: the volume this step and the trial pods both mount
            (the Experiment's ``/mnt/data``); the data is staged under ``<name>/`` in it.
        defaults: hyperparameters for anything the Experiment does not search.
        run_id: pipeline run id; every trial becomes a nested MLflow run of its round.
        round_index: 0 for the first search, k for the k-th re-tune.

    Returns:
        ``experiment`` (Katib-shaped result), ``best_parameters`` (Katib strings) and
        ``hyperparameters`` (typed, ready for training).
    """
    from kaizen.tuning.spec import apply_overrides, load_experiment

    if backend not in ("local", "katib"):
        raise ValueError(f"tuning backend must be 'local' or 'katib', got {backend!r}")
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    manifest = _read_json(manifest_path)
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
    tracker = _tracker(run_id)
    if tracker is not None:
        tracker.log_tuning(result, round_index=round_index)
    if not result.optimal_trial or not result.best_parameters():
        raise RuntimeError(
            f"tuning found no successful trial in experiment {result.name!r} "
            f"({result.status}: {result.reason})"
        )
    assignments = result.best_parameters()
    hyperparameters = best_hyperparameters(
        assignments,
        defaults
        or {"learning_rate": 1e-3, "num_layers": 2, "units": 64, "dropout": 0.1, "batch_size": 256},
    )
    return {
        "experiment": experiment,
        "best_parameters": assignments,
        "hyperparameters": hyperparameters,
    }


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
    run_id: str = "",
    round_index: int = 0,
) -> dict[str, Any]:
    """Train the Keras model on the training split; export ``model.keras`` and its metadata.

    With a ``run_id`` hyperparameters and per-epoch metrics go to the round's MLflow run.
    """
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
    tracker = _tracker(run_id)
    if tracker is not None:
        tracker.log_training(model_dir, round_index=round_index)
    return result.summary()


def _score_champion(test: Any, work_dir: Path) -> dict[str, Any] | None:
    """The current champion's metrics on the same test rows, or None without a champion.

    The champion is loaded through the registry (sha256 verified, ``safe_mode``) and scored
    with its own feature list. A champion that cannot be scored on these rows is reported as
    not comparable, with the reason, instead of failing the run.
    """
    from kaizen.evaluation.metrics import evaluate_scores
    from kaizen.registry import champion, download_model_version
    from kaizen.training.train import load_model, predict_proba

    current = champion()
    if current is None:
        return None
    folder, info = download_model_version("champion", work_dir)
    features = json.loads((Path(folder) / "features.json").read_text())
    missing = [name for name in features if name not in test.columns]
    if missing:
        return {"version": info.version, "comparable": False, "reason": f"missing {missing}"}
    model = load_model(folder, expected_sha256=info.sha256)
    scores = predict_proba(model, test, features)
    metrics = evaluate_scores(test[columns.LABEL].to_numpy(), scores).scalar_metrics()
    return {"version": info.version, "comparable": True, "metrics": metrics}


def evaluate_step(
    model_dir: str | os.PathLike[str],
    test_path: str | os.PathLike[str],
    manifest_path: str | os.PathLike[str],
    *,
    evaluation_path: str | os.PathLike[str],
    report_path: str | os.PathLike[str],
    threshold: float = 0.5,
    compare_champion: bool = True,
    run_id: str = "",
    round_index: int = 0,
) -> dict[str, Any]:
    """Score the latest window with the candidate and the current champion; write the report.

    Returns:
        ``metrics`` (candidate), ``champion`` (version and metrics on the same rows, or None),
        ``test_window`` and ``rows``.
    """
    import tempfile

    import pandas as pd

    from kaizen.evaluation.metrics import evaluate_scores
    from kaizen.evaluation.report import write_html_report, write_plots
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
    with tempfile.TemporaryDirectory() as scratch:
        champion = _score_champion(test, Path(scratch)) if compare_champion else None
        context: dict[str, str | int | float] = {
            "model sha256": model_metadata["sha256"],
            "feature service": manifest.get("feature_service", ""),
            "test window": f"{window.get('start', '?')} .. {window.get('end', '?')}",
            "test rows": len(test),
        }
        if champion and champion.get("comparable"):
            context[f"champion v{champion['version']} roc_auc"] = champion["metrics"]["roc_auc"]
        write_html_report(
            result,
            labels,
            scores,
            Path(report_path),
            title="Kaizen fraud model: evaluation on the latest window",
            context=context,
        )
        evaluation = {
            "metrics": result.to_dict(),
            "champion": champion,
            "test_window": window,
            "rows": len(test),
        }
        write_json_atomic(Path(evaluation_path), evaluation)
        tracker = _tracker(run_id)
        if tracker is not None:
            plots = write_plots(result, labels, scores, Path(scratch) / "plots")
            tracker.log_evaluation(
                evaluation_path, round_index=round_index, report=report_path, plots=plots
            )
    return evaluation


def gate_step(
    evaluation_path: str | os.PathLike[str],
    decision_path: str | os.PathLike[str],
    *,
    min_accuracy: float = 0.80,
    min_roc_auc: float = 0.90,
    min_recall: float = 0.50,
    regression_tolerance: float = 0.01,
    run_id: str = "",
    round_index: int = 0,
) -> dict[str, Any]:
    """Decide pass or fail: absolute thresholds, and no regression against the champion.

    When the evaluation holds the champion's metrics on the same test window, the candidate's
    ROC-AUC must also be at least the champion's minus ``regression_tolerance``. The first
    model (no champion yet) is judged on the thresholds alone.

    With a ``run_id`` the decision is also recorded in the object store under
    ``runs/<run_id>/gate-round-<k>.json``, where the notify step finds every round's outcome.
    """
    from kaizen.evaluation.gate import Check, GatePolicy, NoRegressionCheck, decide

    evaluation = _read_json(evaluation_path)
    metrics = evaluation["metrics"]
    policy = GatePolicy(min_accuracy=min_accuracy, min_roc_auc=min_roc_auc, min_recall=min_recall)
    champion = evaluation.get("champion")
    extra: list[Check] = []
    if champion and champion.get("comparable"):
        extra.append(
            NoRegressionCheck(
                "roc_auc",
                champion_value=float(champion["metrics"]["roc_auc"]),
                tolerance=regression_tolerance,
                champion=f"champion v{champion['version']}",
            )
        )
    decision = decide(metrics, policy, extra_checks=extra)
    payload = decision.to_dict()
    payload["round"] = round_index
    payload["champion"] = champion
    write_json_atomic(Path(decision_path), payload)
    if run_id:
        record_gate_outcome(run_id, round_index, payload, metrics)
        tracker = _tracker(run_id)
        if tracker is not None:
            tracker.log_gate_decision(payload, round_index=round_index)
    return payload


GATE_METRICS = ("accuracy", "roc_auc", "pr_auc", "precision", "recall", "f1")


def _outcome_key(run_id: str, round_index: int) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in run_id)
    return f"runs/{safe}/gate-round-{round_index}.json"


def record_gate_outcome(
    run_id: str, round_index: int, decision: Mapping[str, Any], metrics: Mapping[str, Any]
) -> None:
    """Store one round's gate outcome; a retried gate step writes the same record again."""
    from kaizen.storage import open_store

    record = {
        "round": round_index,
        "passed": bool(decision.get("passed")),
        "reasons": list(decision.get("reasons", [])),
        "metrics": {name: metrics.get(name) for name in GATE_METRICS},
    }
    open_store().put_bytes(
        _outcome_key(run_id, round_index),
        json.dumps(record, sort_keys=True).encode(),
        overwrite=True,
    )


def gate_outcomes(run_id: str) -> list[dict[str, Any]]:
    """Every recorded gate round of ``run_id``, in round order."""
    from kaizen.storage import open_store

    store = open_store()
    prefix = _outcome_key(run_id, 0).rsplit("/", 1)[0] + "/"
    rounds = [json.loads(store.get_bytes(key)) for key in store.list(prefix)]
    return sorted(rounds, key=lambda record: int(record["round"]))


def outcome_message(state: str, error_message: str, rounds: list[dict[str, Any]]) -> str:
    """One sentence a person reads in the notification."""
    succeeded = state.upper() in {"SUCCEEDED", "SUCCESS"}
    if not succeeded:
        return f"run failed: {error_message or 'see task logs'}"
    if not rounds:
        return "run succeeded"
    passed = [record for record in rounds if record["passed"]]
    if passed:
        winner = passed[0]
        roc_auc = winner["metrics"].get("roc_auc")
        return f"run succeeded: gate passed in round {winner['round']}" + (
            f" (roc_auc {roc_auc:.3f})" if isinstance(roc_auc, int | float) else ""
        )

    def score(record: dict[str, Any]) -> float:
        value = record["metrics"].get("roc_auc")
        return float(value) if isinstance(value, int | float) else float("-inf")

    best = max(rounds, key=score)
    reached = ", ".join(
        f"{name} {value:.3f}"
        for name, value in best["metrics"].items()
        if isinstance(value, int | float)
    )
    failing = "; ".join(reason for reason in best["reasons"] if reason.endswith("fail"))
    return (
        f"gate failed after {len(rounds)} round(s), model not registered; best reached in round "
        f"{best['round']}: {reached} ({failing})"
    )


def register_step(
    model_dir: str | os.PathLike[str],
    decision_path: str | os.PathLike[str],
    *,
    run_id: str,
    round_index: int = 0,
) -> dict[str, Any]:
    """Register a model that passed the gate as the new ``challenger`` version.

    The first version of the model also becomes ``champion``. Re-running the step for the
    same pipeline run returns the version it registered before: nothing is duplicated.
    """
    from kaizen.registry import register_challenger

    decision = _read_json(decision_path)
    if not decision.get("passed"):
        raise ValueError(f"refusing to register: the gate decision in {decision_path} is 'fail'")
    tracker = _tracker(run_id)
    if tracker is None:
        raise ValueError("registering needs the pipeline run id (run_id)")
    info = register_challenger(model_dir, run_id=tracker.round_run_id(round_index))
    record = info.to_dict()
    record["round"] = round_index
    return record


def notify_step(
    pipeline: str,
    run: str,
    state: str,
    error_message: str = "",
    webhook_url: str = "",
    run_id: str = "",
) -> dict[str, Any]:
    """Record how the run ended: a log line, and a webhook POST when configured.

    The message says whether the gate passed (and in which round) or, when every round
    failed, the best metrics reached, read from the gate outcomes recorded under ``run_id``.
    """
    from kaizen.monitoring.notify import Notification, notify

    rounds = gate_outcomes(run_id) if run_id else []
    message = outcome_message(state, error_message, rounds)
    tracker = _tracker(run_id)
    if tracker is not None:
        succeeded = state.upper() in {"SUCCEEDED", "SUCCESS"}
        tracker.finish("FINISHED" if succeeded else "FAILED")
    record = notify(
        Notification(
            pipeline=pipeline,
            run=run_id or run,
            state=state,
            message=message,
            details={"gate_rounds": rounds},
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
    "register_step",
    "train_step",
    "tune_step",
]
