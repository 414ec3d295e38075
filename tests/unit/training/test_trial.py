"""The trial program: Katib metric lines from a real subprocess, and its command-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from kaizen.training.trial import main

# Katib's default StdOut metrics filter (katib pkg/metricscollector/v1beta1/common).
KATIB_METRIC_PATTERN = re.compile(r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)")
EPOCH_METRICS = {
    "loss",
    "roc_auc",
    "pr_auc",
    "accuracy",
    "val_loss",
    "val_roc_auc",
    "val_pr_auc",
    "val_accuracy",
}
FEATURES = ["amount_zscore", "merchant_risk", "velocity_1h", "noise"]


def katib_metrics(line: str) -> dict[str, str]:
    """Parse a line as Katib does; every value must be taken whole (no 'nan', no cut-off)."""
    return {match.group(1): match.group(2) for match in KATIB_METRIC_PATTERN.finditer(line)}


@pytest.fixture
def data_files(make_frame: Callable[..., pd.DataFrame], tmp_path: Path) -> tuple[Path, Path]:
    train_path, validation_path = tmp_path / "train.parquet", tmp_path / "validation.parquet"
    make_frame(1500, seed=1).to_parquet(train_path)
    make_frame(500, seed=2).to_parquet(validation_path)
    return train_path, validation_path


def test_trial_subprocess_prints_katib_metric_lines(
    data_files: tuple[Path, Path], tmp_path: Path, repo_root: Path
) -> None:
    train_path, validation_path = data_files
    features_file = tmp_path / "features.json"
    features_file.write_text(json.dumps(FEATURES))
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "kaizen.training.trial",
            "--learning-rate=0.003",
            "--num-layers",
            "2",
            "--units=16",
            "--dropout",
            "0.1",
            "--batch-size=128",
            "--epochs=4",
            "--patience",
            "4",
            "--seed=7",
            f"--train-data={train_path}",
            "--validation-data",
            validation_path.as_uri(),
            f"--features-file={features_file}",
            "--output-dir",
            str(tmp_path / "model"),
        ],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.splitlines()
    epoch_lines = [line for line in lines if line.startswith("epoch=")]
    assert len(epoch_lines) == 4, completed.stdout
    val_auc = []
    for number, line in enumerate(epoch_lines, start=1):
        metrics = katib_metrics(line)
        assert metrics["epoch"] == str(number)
        assert set(metrics) == {"epoch", *EPOCH_METRICS}
        # Katib took every value whole: the parsed text is exactly what follows '='.
        tokens = dict(token.split("=", 1) for token in line.split())
        assert tokens == metrics
        assert all(float(value) >= 0.0 for value in metrics.values())
        val_auc.append(float(metrics["val_roc_auc"]))
    assert max(val_auc) > 0.9

    final = katib_metrics(lines[-1])
    assert set(final) == {
        "best_epoch",
        "epochs_run",
        "val_loss",
        "val_roc_auc",
        "val_pr_auc",
        "val_accuracy",
    }
    assert int(final["epochs_run"]) == 4
    # The final line reports the exported model: the best epoch's validation ROC-AUC.
    assert int(final["best_epoch"]) == val_auc.index(max(val_auc)) + 1
    assert float(final["val_roc_auc"]) == pytest.approx(max(val_auc), abs=2e-6)
    assert json.loads((tmp_path / "model" / "features.json").read_text()) == FEATURES
    assert (tmp_path / "model" / "model.keras").is_file()


def _exit_code_and_stderr(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int | str | None, str]:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    return caught.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (["--learning-rate=fast"], "argument --learning-rate: invalid float value: 'fast'"),
        (["--learning-rate=2"], r"argument --learning-rate: learning_rate must be in \(0, 1\]"),
        (["--num-layers", "0"], r"argument --num-layers: num_layers must be in \[1, 8\]"),
        (["--units=2.5"], "argument --units: invalid int value: '2.5'"),
        (["--dropout=0.95"], r"argument --dropout: dropout must be in \[0, 0.9\]"),
        (["--epochs=0"], r"argument --epochs: epochs must be in \[1, 1000\]"),
        (["--features=a", "--features-file=f.json"], "argument --features-file: not allowed with"),
        (["--features= , "], "argument --features: the feature list is empty"),
        (["--bogus=1"], "unrecognized arguments: --bogus=1"),
    ],
)
def test_bad_arguments_exit_2_naming_the_flag(
    bad: list[str],
    message: str,
    data_files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    train_path, validation_path = data_files
    argv = [
        f"--train-data={train_path}",
        f"--validation-data={validation_path}",
        f"--output-dir={tmp_path / 'model'}",
        *bad,
    ]
    code, stderr = _exit_code_and_stderr(argv, capsys)
    assert code == 2
    assert re.search(message, stderr), stderr
    assert not (tmp_path / "model").exists()


def test_missing_required_flag_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    code, stderr = _exit_code_and_stderr(["--train-data=x.parquet"], capsys)
    assert code == 2
    assert "--validation-data" in stderr and "--output-dir" in stderr


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--train-data", "s3://bucket/train.parquet", "unsupported URI scheme 's3'"),
        ("--train-data", "{missing}", "no such file"),
        ("--validation-data", "{text}", "cannot read .* as Parquet"),
        ("--features-file", "{text}", "is not valid JSON"),
        ("--features-file", "{object}", "must hold a JSON list of column names"),
    ],
)
def test_unusable_paths_exit_2_naming_the_flag(
    flag: str,
    value: str,
    message: str,
    data_files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    train_path, validation_path = data_files
    (tmp_path / "notes.txt").write_text("not parquet, not json")
    (tmp_path / "object.json").write_text(json.dumps({"columns": FEATURES}))
    value = value.format(
        missing=tmp_path / "missing.parquet",
        text=tmp_path / "notes.txt",
        object=tmp_path / "object.json",
    )
    args = {
        "--train-data": str(train_path),
        "--validation-data": str(validation_path),
        "--output-dir": str(tmp_path / "model"),
        flag: value,
    }
    code, stderr = _exit_code_and_stderr([f"{k}={v}" for k, v in args.items()], capsys)
    assert code == 2
    assert re.search(f"argument {flag}: .*{message}", stderr), stderr


def test_unusable_data_exits_1_with_the_reason(
    make_frame: Callable[..., pd.DataFrame],
    data_files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, validation_path = data_files
    single_class = make_frame(100, seed=3).assign(is_fraud=0)
    single_class.to_parquet(tmp_path / "single.parquet")
    code = main(
        [
            f"--train-data={tmp_path / 'single.parquet'}",
            f"--validation-data={validation_path}",
            f"--output-dir={tmp_path / 'model'}",
        ]
    )
    assert code == 1
    assert "error: train data has a single class" in capsys.readouterr().err
