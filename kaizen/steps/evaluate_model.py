"""Step: score the latest window with the candidate and the current champion; write the report."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kaizen.data.columns import LABEL
from kaizen.platform.fileio import write_json_atomic
from kaizen.steps._io import read_json, tracker

if TYPE_CHECKING:
    from kaizen.platform.settings import Settings


def _score_champion(test: Any, work_dir: Path, settings: Settings) -> dict[str, Any] | None:
    """The current champion's metrics on the same test rows, or None without a champion.

    The champion is loaded through the registry (sha256 verified, ``safe_mode``) and scored
    with its own feature list. A champion that cannot be scored on these rows is reported as
    not comparable, with the reason, instead of failing the run.
    """
    from kaizen.evaluation.metrics import evaluate_scores
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
    metrics = evaluate_scores(test[LABEL].to_numpy(), scores).scalar_metrics()
    return {"version": info.version, "comparable": True, "metrics": metrics}


def evaluate_step(
    model_dir: str | os.PathLike[str],
    test_path: str | os.PathLike[str],
    manifest_path: str | os.PathLike[str],
    *,
    settings: Settings,
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

    model_metadata = read_json(Path(model_dir) / "metadata.json")
    manifest = read_json(manifest_path)
    feature_names = json.loads((Path(model_dir) / "features.json").read_text())
    model = load_model(model_dir, expected_sha256=model_metadata["sha256"])
    test = pd.read_parquet(test_path)
    scores = predict_proba(model, test, feature_names)
    labels = test[LABEL].to_numpy()
    result = evaluate_scores(labels, scores, threshold=threshold)
    window = manifest.get("windows", {}).get("test", {})
    with tempfile.TemporaryDirectory() as scratch:
        champion = _score_champion(test, Path(scratch), settings) if compare_champion else None
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
        run = tracker(run_id, settings)
        if run is not None:
            plots = write_plots(result, labels, scores, Path(scratch) / "plots")
            run.log_evaluation(
                evaluation_path, round_index=round_index, report=report_path, plots=plots
            )
    return evaluation
