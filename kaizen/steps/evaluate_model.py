"""Step: choose the operating threshold on validation, score the latest window; write the report.

The threshold is chosen on the validation window by the declared policy
(:mod:`kaizen.evaluation.threshold`) and the test metrics are measured at it, so the gate judges
precision and recall at the operating point the model will be served with.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kaizen.data.columns import LABEL
from kaizen.platform.fileio import write_json_atomic
from kaizen.steps._io import read_json, tracker

if TYPE_CHECKING:
    from kaizen.evaluation.threshold import ThresholdChoice, ThresholdPolicy
    from kaizen.platform.settings import Settings


def _score_champion(test: Any, work_dir: Path, settings: Settings) -> dict[str, Any] | None:
    """The current champion's metrics on the same test rows, or None without a champion.

    The champion is loaded through the registry (sha256 verified, ``safe_mode``) and scored
    with its own feature list, at its own recorded threshold (0.5 without one). A champion
    that cannot be scored on these rows is reported as not comparable, with the reason,
    instead of failing the run.
    """
    from kaizen.evaluation.metrics import evaluate_scores
    from kaizen.evaluation.threshold import DEFAULT_THRESHOLD, recorded_threshold
    from kaizen.registry import champion, download_model_version
    from kaizen.training.train import load_model, predict_proba

    current = champion(settings)
    if current is None:
        return None
    folder, info = download_model_version("champion", work_dir, settings)
    features = json.loads((Path(folder) / "features.json").read_text())
    missing = [name for name in features if name not in test.columns]
    if missing:
        return {"version": info.version, "comparable": False, "reason": f"missing {missing}"}
    model = load_model(folder, expected_sha256=info.sha256)
    scores = predict_proba(model, test, features)
    threshold = recorded_threshold(info.tags)
    metrics = evaluate_scores(
        test[LABEL].to_numpy(),
        scores,
        threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
    ).scalar_metrics()
    return {"version": info.version, "comparable": True, "metrics": metrics}


def evaluate_step(
    model_dir: str | os.PathLike[str],
    test_path: str | os.PathLike[str],
    manifest_path: str | os.PathLike[str],
    *,
    settings: Settings,
    evaluation_path: str | os.PathLike[str],
    report_path: str | os.PathLike[str],
    validation_path: str | os.PathLike[str] | None = None,
    threshold_policy: ThresholdPolicy | None = None,
    compare_champion: bool = True,
    run_id: str = "",
    round_index: int = 0,
) -> dict[str, Any]:
    """Choose the threshold on validation, then score the latest window; write the report.

    Args:
        model_dir: The trained model folder.
        test_path: Test rows (Parquet) from the latest window.
        manifest_path: The feature manifest (JSON).
        settings: Kaizen settings.
        evaluation_path: Where the evaluation JSON goes.
        report_path: Where the HTML report goes.
        validation_path: Validation rows (Parquet) the threshold is chosen on; needed by every
            policy but ``"fixed"``.
        threshold_policy: How the threshold is chosen; ``fixed`` at 0.5 when omitted.
        compare_champion: Score the registry's champion on the same rows.
        run_id: The pipeline run id (its MLflow parent run); empty for no tracking.
        round_index: The tuning round this evaluation belongs to.

    Returns:
        ``metrics`` (candidate, at the chosen threshold), ``threshold`` (the choice, see
        ``ThresholdChoice.to_dict``), ``champion`` (version and metrics on the same rows, or
        None), ``test_window`` and ``rows``.

    Raises:
        ValueError: A policy that chooses from data without ``validation_path``.
    """
    import tempfile

    import pandas as pd

    from kaizen.evaluation.metrics import evaluate_scores
    from kaizen.evaluation.report import write_html_report, write_plots
    from kaizen.evaluation.threshold import ThresholdPolicy
    from kaizen.training.train import load_model, predict_proba

    model_metadata = read_json(Path(model_dir) / "metadata.json")
    manifest = read_json(manifest_path)
    feature_names = json.loads((Path(model_dir) / "features.json").read_text())
    model = load_model(model_dir, expected_sha256=model_metadata["sha256"])
    test = pd.read_parquet(test_path)
    choice = _choose_threshold(
        model, feature_names, validation_path, threshold_policy or ThresholdPolicy("fixed")
    )
    scores = predict_proba(model, test, feature_names)
    labels = test[LABEL].to_numpy()
    result = evaluate_scores(labels, scores, threshold=choice.threshold)
    window = manifest.get("windows", {}).get("test", {})
    with tempfile.TemporaryDirectory() as scratch:
        champion = _score_champion(test, Path(scratch), settings) if compare_champion else None
        context: dict[str, str | int | float] = {
            "model sha256": model_metadata["sha256"],
            "feature service": manifest.get("feature_service", ""),
            "test window": f"{window.get('start', '?')} .. {window.get('end', '?')}",
            "test rows": len(test),
            "threshold policy": choice.policy.describe(),
            "threshold chosen on validation": (
                f"{choice.threshold:.4g}: precision {choice.validation_precision:.3f}, "
                f"recall {choice.validation_recall:.3f} on {choice.validation_rows} rows"
                if choice.validation_rows
                else f"{choice.threshold:.4g} (no validation rows given)"
            ),
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
            "threshold": choice.to_dict(),
            "champion": champion,
            "test_window": window,
            "rows": len(test),
        }
        write_json_atomic(Path(evaluation_path), evaluation)
        run = tracker(run_id, settings)
        if run is not None:
            plots = write_plots(result, labels, scores, Path(scratch) / "plots")
            run.log_evaluation(
                evaluation_path, round_index=round_index, report=report_path, plots=plots
            )
    return evaluation


def _choose_threshold(
    model: Any,
    feature_names: list[str],
    validation_path: str | os.PathLike[str] | None,
    policy: ThresholdPolicy,
) -> ThresholdChoice:
    """The operating threshold, chosen on the validation rows by ``policy``."""
    import pandas as pd

    from kaizen.evaluation.threshold import choose_threshold
    from kaizen.training.train import predict_proba

    if validation_path is None:
        if policy.policy != "fixed":
            raise ValueError(
                f"threshold_policy {policy.policy!r} chooses the threshold on validation data, "
                "but no validation rows were given (validation_path)"
            )
        # "fixed" needs no data; without it the validation figures are unknown (0 rows).
        from kaizen.evaluation.threshold import ThresholdChoice

        return ThresholdChoice(policy.threshold, policy, 0.0, 0.0, 0.0, 0)
    validation = pd.read_parquet(validation_path)
    scores = predict_proba(model, validation, feature_names)
    try:
        return choose_threshold(validation[LABEL].to_numpy(), scores, policy)
    except ValueError as error:
        raise ValueError(f"cannot choose the threshold on {validation_path}: {error}") from error
