"""The training trial program: one run of ``train`` with hyperparameters from the command line.

It is the Katib trial on the cluster and locally. Every epoch it prints one line of
``name=value`` metrics to stdout, which Katib's default StdOut metrics collector parses with
``([\\w|-]+)\\s*=\\s*([+-]?\\d*(\\.\\d+)?([Ee][+-]?\\d+)?)``::

    epoch=3 loss=0.21 roc_auc=0.95 pr_auc=0.61 accuracy=0.93 val_loss=0.2 val_roc_auc=0.96 ...

and finally the metrics of the exported (best-epoch) model, so that Katib's default
"latest value" strategy reports the model that was actually exported::

    best_epoch=3 epochs_run=6 val_loss=0.2 val_roc_auc=0.96 val_pr_auc=0.7 val_accuracy=0.97

Usage::

    python -m kaizen.training.trial --learning-rate=0.001 --num-layers=2 --units=64 \\
        --dropout=0.1 --batch-size=256 --epochs=10 --seed=42 \\
        --train-data=train.parquet --validation-data=validation.parquet \\
        [--features=a,b,c | --features-file=features.json] --output-dir=DIR [--checkpoint-dir=DIR]

Exit codes: 0 success, 1 unusable data or checkpoint, 2 bad command line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

from kaizen.training.model import HyperParameterError, HyperParameters, import_keras

# Printed per epoch, in this order, when Keras reports them.
EPOCH_METRICS: tuple[str, ...] = (
    "loss",
    "roc_auc",
    "pr_auc",
    "accuracy",
    "val_loss",
    "val_roc_auc",
    "val_pr_auc",
    "val_accuracy",
)

_FLAG_FOR_FIELD = {
    "learning_rate": "--learning-rate",
    "num_layers": "--num-layers",
    "units": "--units",
    "dropout": "--dropout",
    "batch_size": "--batch-size",
    "epochs": "--epochs",
    "patience": "--patience",
    "seed": "--seed",
}


def format_metric(value: float) -> str:
    """Format a metric value so that Katib's regex reads it whole (no 'nan', no 'inf')."""
    if not math.isfinite(value):
        # Katib's pattern cannot parse nan/inf; an out-of-range sentinel keeps the line
        # parseable and is obviously not a real ROC-AUC.
        return "-1"
    return f"{value:.6g}"


def format_metrics_line(prefix: dict[str, int], metrics: dict[str, float]) -> str:
    """Return ``k=v`` pairs: ``prefix`` first, then ``metrics`` in ``EPOCH_METRICS`` order."""
    parts = [f"{name}={value}" for name, value in prefix.items()]
    ordered = [name for name in EPOCH_METRICS if name in metrics]
    ordered += sorted(name for name in metrics if name not in EPOCH_METRICS)
    parts += [f"{name}={format_metric(float(metrics[name]))}" for name in ordered]
    return " ".join(parts)


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser (``--flag=value`` and ``--flag value`` both work)."""
    defaults = HyperParameters()
    parser = argparse.ArgumentParser(
        prog="python -m kaizen.training.trial",
        description="Train the fraud model once and print Katib metric lines per epoch.",
        allow_abbrev=False,
    )
    hp = parser.add_argument_group("hyperparameters")
    hp.add_argument(
        "--learning-rate",
        type=float,
        default=defaults.learning_rate,
        help="Adam learning rate, in (0, 1]",
    )
    hp.add_argument(
        "--num-layers", type=int, default=defaults.num_layers, help="hidden layers, 1..8"
    )
    hp.add_argument(
        "--units", type=int, default=defaults.units, help="units per hidden layer, 1..1024"
    )
    hp.add_argument(
        "--dropout",
        type=float,
        default=defaults.dropout,
        help="dropout after each hidden layer, in [0, 0.9]",
    )
    hp.add_argument(
        "--batch-size", type=int, default=defaults.batch_size, help="training batch size"
    )
    hp.add_argument("--epochs", type=int, default=defaults.epochs, help="maximum epochs")
    hp.add_argument(
        "--patience",
        type=int,
        default=defaults.patience,
        help="epochs without val_roc_auc improvement before stopping",
    )
    hp.add_argument(
        "--seed", type=int, default=defaults.seed, help="seed for weights, shuffling and dropout"
    )
    data = parser.add_argument_group("data and outputs")
    data.add_argument(
        "--train-data", required=True, help="training rows: Parquet path or file:// URI"
    )
    data.add_argument(
        "--validation-data", required=True, help="validation rows: Parquet path or file:// URI"
    )
    features = data.add_mutually_exclusive_group()
    features.add_argument("--features", help="comma-separated ordered feature columns")
    features.add_argument(
        "--features-file", help="JSON file with the ordered feature list (as features.json)"
    )
    data.add_argument(
        "--output-dir", required=True, help="folder for model.keras, features.json, metadata.json"
    )
    data.add_argument(
        "--checkpoint-dir",
        default=None,
        help="folder for per-epoch checkpoints; rerun with it to resume",
    )
    return parser


def _local_path(parser: argparse.ArgumentParser, flag: str, value: str) -> Path:
    """Return the local path of ``value`` (a path or file:// URI), or exit 2 naming ``flag``."""
    parsed = urlparse(value)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            parser.error(
                f"argument {flag}: file:// URI with a remote host is not supported: {value}"
            )
        return Path(unquote(parsed.path))
    # One-letter "schemes" are Windows drive letters, not URIs.
    if parsed.scheme and len(parsed.scheme) > 1:
        parser.error(
            f"argument {flag}: unsupported URI scheme {parsed.scheme!r} in {value!r}; "
            "expected a local path or a file:// URI"
        )
    return Path(value)


def _read_parquet(parser: argparse.ArgumentParser, flag: str, value: str) -> Any:
    import pandas as pd

    path = _local_path(parser, flag, value)
    if not path.exists():
        parser.error(f"argument {flag}: no such file: {path}")
    try:
        return pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a non-Parquet file
        parser.error(f"argument {flag}: cannot read {path} as Parquet: {error}")


def _feature_list(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str] | None:
    if args.features is not None:
        names = [name.strip() for name in args.features.split(",")]
        if not any(names):
            parser.error("argument --features: the feature list is empty")
        if not all(names):
            parser.error(f"argument --features: empty name in {args.features!r}")
        return names
    if args.features_file is not None:
        path = _local_path(parser, "--features-file", args.features_file)
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            parser.error(f"argument --features-file: no such file: {path}")
        except (OSError, json.JSONDecodeError) as error:
            parser.error(f"argument --features-file: {path} is not valid JSON: {error}")
        # features.json is a plain list; a manifest object with "feature_names" also works.
        if isinstance(loaded, dict):
            loaded = loaded.get("feature_names", loaded.get("features"))
        if not isinstance(loaded, list) or not all(isinstance(n, str) for n in loaded):
            parser.error(
                f"argument --features-file: {path} must hold a JSON list of column names "
                '(or an object with a "feature_names" list)'
            )
        return list(loaded)
    return None


def make_metric_printer(stream: IO[str]) -> Any:
    """Return a Keras callback printing one Katib metric line per epoch to ``stream``."""
    callback_base: Any = import_keras().callbacks.Callback

    class _KatibMetricPrinter(callback_base):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            line = format_metrics_line({"epoch": epoch + 1}, dict(logs or {}))
            print(line, file=stream, flush=True)

    return _KatibMetricPrinter()


def main(argv: Sequence[str] | None = None, stdout: IO[str] | None = None) -> int:
    """Run one trial.

    Args:
        argv: command-line arguments without the program name; None reads ``sys.argv``.
        stdout: where metric lines go; None is ``sys.stdout``.

    Returns:
        The exit code: 0 on success, 1 for unusable data or checkpoint. A bad command line
        exits with code 2 through argparse.
    """
    out = stdout if stdout is not None else sys.stdout
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        hparams = HyperParameters(
            learning_rate=args.learning_rate,
            num_layers=args.num_layers,
            units=args.units,
            dropout=args.dropout,
            batch_size=args.batch_size,
            epochs=args.epochs,
            patience=args.patience,
            seed=args.seed,
        )
    except HyperParameterError as error:
        parser.error(f"argument {_FLAG_FOR_FIELD[error.field]}: {error}")
    feature_names = _feature_list(parser, args)
    output_dir = _local_path(parser, "--output-dir", args.output_dir)
    checkpoint_dir = (
        _local_path(parser, "--checkpoint-dir", args.checkpoint_dir)
        if args.checkpoint_dir is not None
        else None
    )
    train_df = _read_parquet(parser, "--train-data", args.train_data)
    validation_df = _read_parquet(parser, "--validation-data", args.validation_data)

    from kaizen.training.checkpoint import CheckpointMismatchError
    from kaizen.training.data import TrainingDataError
    from kaizen.training.train import train

    def announce_resume(completed_epochs: int) -> None:
        print(
            f"resuming from checkpoint {checkpoint_dir}: completed_epochs={completed_epochs} "
            f"resume_epoch={completed_epochs + 1}",
            file=out,
            flush=True,
        )

    try:
        result = train(
            train_df,
            validation_df,
            feature_names,
            hparams,
            output_dir,
            checkpoint_dir=checkpoint_dir,
            callbacks=[make_metric_printer(out)],
            on_resume=announce_resume,
        )
    except (TrainingDataError, CheckpointMismatchError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    final = {f"val_{name}": value for name, value in result.validation_metrics.items()}
    line = format_metrics_line(
        {"best_epoch": result.best_epoch, "epochs_run": result.epochs_run}, final
    )
    print(line, file=out, flush=True)
    print(f"model exported to {result.model_path} (sha256 {result.sha256})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
