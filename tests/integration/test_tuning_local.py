"""katib/fraud-mlp-tpe.yaml run by the local executor on the real trial program, tiny budget.

Real Feast features on small generated data, two real TensorFlow trials at once
(``python -m kaizen.training.trial``), metrics parsed from their stdout.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaizen.tuning.local import load_result, run_experiment
from kaizen.tuning.spec import apply_overrides, load_experiment

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from kaizen.platform.settings import Settings
    from kaizen.steps import features_step, ingest_step

    home = tmp_path_factory.mktemp("tuning-home")
    settings = Settings(home=home)
    work = home / "work"
    work.mkdir()
    ingest_step("", work / "tx", settings=settings, rows=6000, customers=120, merchants=30, days=24)
    features_step(
        work / "tx",
        REPO_ROOT / "feature_repo",
        settings=settings,
        train_path=work / "train.parquet",
        validation_path=work / "validation.parquet",
        test_path=work / "test.parquet",
        manifest_path=work / "manifest.json",
        validation_days=4,
        test_days=4,
    )
    names = json.loads((work / "manifest.json").read_text())["feature_names"]
    (work / "features.json").write_text(json.dumps(names))
    return {
        "train": work / "train.parquet",
        "validation": work / "validation.parquet",
        "features": work / "features.json",
    }


def test_the_experiment_yaml_tunes_the_real_trial_program(
    features: dict[str, Path], tmp_path: Path
) -> None:
    body = apply_overrides(
        load_experiment(REPO_ROOT / "katib" / "fraud-mlp-tpe.yaml"),
        train_data=str(features["train"]),
        validation_data=str(features["validation"]),
        features_file=str(features["features"]),
        max_trial_count=2,
        parallel_trial_count=2,
        max_failed_trial_count=1,
    )
    container = body["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    # Two epochs keep the test short; everything else is the checked-in experiment.
    container["command"] = [
        "--epochs=2" if arg.startswith("--epochs=") else arg for arg in container["command"]
    ]
    work_dir = tmp_path / "tune"

    result = run_experiment(body, work_dir=work_dir)

    assert result.status == "Succeeded", result.reason
    assert result.reason.startswith("ExperimentMaxTrialsReached: 2 trials completed")
    assert [t.status for t in result.trials] == ["Succeeded", "Succeeded"], [
        (t.name, t.message) for t in result.trials
    ]
    for trial in result.trials:
        assert 0.5 < trial.metrics["val_roc_auc"] <= 1.0
        assert {"val_accuracy", "val_pr_auc", "val_loss"} <= set(trial.metrics)
        assert [step for step, _ in trial.intermediate][:2] == [1, 2]  # epoch lines
        assert (work_dir / "trials" / trial.name / "output" / "model.keras").exists()
    first, second = sorted(result.trials, key=lambda t: t.started_at or "")
    assert second.started_at is not None and first.finished_at is not None
    assert second.started_at < first.finished_at  # the two trials ran at the same time
    optimal = result.optimal_trial
    assert optimal is not None
    best = max(result.trials, key=lambda t: t.metrics["val_roc_auc"])  # strategy: latest
    assert optimal["bestTrialName"] == best.name
    assert [a["name"] for a in optimal["parameterAssignments"]] == [
        "learning_rate",
        "num_layers",
        "units",
        "dropout",
        "batch_size",
    ]
    assert result.best_parameters()["batch_size"] in ("128", "256", "512")
    assert load_result(work_dir) == result
