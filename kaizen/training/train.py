"""Train the fraud model, export it with its sha256, load it back safely, score frames.

The exported model folder holds:

* ``model.keras``: the Keras v3 archive (Normalization statistics included);
* ``model.keras.sha256``: its digest in ``sha256sum`` format;
* ``features.json``: the ordered feature list (a JSON array of column names);
* ``metadata.json``: hyperparameters, epochs, best epoch, metrics, history, data row counts,
  sha256 and library versions. It is written last, so its presence marks a complete export.
"""

from __future__ import annotations

import json
import os
import platform
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kaizen.data.columns import LABEL
from kaizen.platform.fileio import atomic_path, write_text_atomic
from kaizen.platform.storage import sha256_file
from kaizen.training.checkpoint import (
    EpochHistory,
    make_history_recorder,
    make_resumable_backup,
    remove_checkpoint,
)
from kaizen.training.data import (
    TrainingDataError,
    balanced_class_weights,
    check_feature_names,
    data_fingerprint,
    default_feature_names,
    feature_matrix,
    label_vector,
    require_both_classes,
)
from kaizen.training.model import METRIC_NAMES, HyperParameters, build_model, import_keras

if TYPE_CHECKING:
    import keras

MODEL_FILE = "model.keras"
SHA256_FILE = "model.keras.sha256"
FEATURES_FILE = "features.json"
METADATA_FILE = "metadata.json"
METADATA_FORMAT_VERSION = 1

# Early stopping and the Katib objective both use this metric.
MONITOR = "val_roc_auc"

# Large batches for evaluation and scoring: the batch size does not change the results.
_SCORING_BATCH = 4096
_SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
# Names of the temporary files written by this module before their atomic rename.
_TEMPORARY_FILE = re.compile(
    r"^\.(model\.keras|model\.keras\.sha256|features\.json|metadata\.json)\.\w+\.tmp(\.keras)?$"
)

__all__ = [
    "FEATURES_FILE",
    "METADATA_FILE",
    "MODEL_FILE",
    "SHA256_FILE",
    "ModelFileError",
    "TrainingDataError",
    "TrainingResult",
    "load_model",
    "predict_proba",
    "train",
]


class ModelFileError(ValueError):
    """A model file that must not or cannot be loaded: wrong format, damaged or tampered."""


@dataclass(frozen=True)
class TrainingResult:
    """What one training run produced.

    Attributes:
        output_dir: folder holding the exported files.
        model_path: the ``model.keras`` file.
        sha256: hex sha256 of ``model.keras``.
        feature_names: ordered model inputs.
        hparams: hyperparameters of the run.
        epochs_run: epochs completed in total, including epochs restored from a checkpoint.
        best_epoch: 1-based epoch with the best validation ROC-AUC; the exported weights.
        stopped_early: whether early stopping ended the run before ``hparams.epochs``.
        resumed_from_epoch: completed epochs restored from the checkpoint (0 = fresh run).
        train_metrics: loss, roc_auc, pr_auc, accuracy of the exported model on the
            training rows (unweighted, no dropout).
        validation_metrics: the same on the validation rows.
        history: per-epoch logs as Keras reports them (``loss``, ``val_roc_auc``, ...).
        train_rows: training row count.
        validation_rows: validation row count.
    """

    output_dir: Path
    model_path: Path
    sha256: str
    feature_names: tuple[str, ...]
    hparams: HyperParameters
    epochs_run: int
    best_epoch: int
    stopped_early: bool
    resumed_from_epoch: int
    train_metrics: dict[str, float]
    validation_metrics: dict[str, float]
    history: dict[str, list[float]] = field(repr=False)
    train_rows: int
    validation_rows: int

    def summary(self) -> dict[str, Any]:
        """Return the sha256 and a flat dict of numeric metrics (for KFP ``Metrics``)."""
        metrics: dict[str, float] = {}
        for name, value in self.train_metrics.items():
            metrics[f"train_{name}"] = value
        for name, value in self.validation_metrics.items():
            metrics[f"val_{name}"] = value
        metrics["best_epoch"] = float(self.best_epoch)
        metrics["epochs_run"] = float(self.epochs_run)
        return {
            "sha256": self.sha256,
            "model_path": str(self.model_path),
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "metrics": metrics,
        }


def _seed_everything(seed: int) -> None:
    import tensorflow as tf

    keras = import_keras()

    # Seeds Python, NumPy and TensorFlow (the fit() shuffle); layers carry their own seeds.
    keras.utils.set_random_seed(seed)
    # Same seed, same data -> bit-identical weights; costs a little speed on CPU.
    tf.config.experimental.enable_op_determinism()


def _check_output_dir(output_dir: Path) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"output_dir {output_dir} exists and is not a directory")
    if (output_dir / METADATA_FILE).exists():
        raise FileExistsError(
            f"{output_dir} already holds a trained model ({METADATA_FILE} exists); refusing to "
            "overwrite it: choose a new output directory"
        )


def _library_versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "python": platform.python_version(),
    }


def _evaluate(model: keras.Model, features: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    results = model.evaluate(
        features, labels, batch_size=_SCORING_BATCH, verbose=0, return_dict=True
    )
    return {name: float(results[name]) for name in ("loss", *METRIC_NAMES)}


def train(
    train_df: pd.DataFrame,
    validation_df: pd.DataFrame,
    feature_names: Sequence[str] | None,
    hparams: HyperParameters,
    output_dir: str | os.PathLike[str],
    checkpoint_dir: str | os.PathLike[str] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    *,
    on_resume: Callable[[int], None] | None = None,
) -> TrainingResult:
    """Train the MLP with early stopping on validation ROC-AUC and export it.

    Training is deterministic for ``hparams.seed``: the same data and hyperparameters give
    bit-identical weights on the same platform and library versions. Both classes get
    equal total weight in the loss (balanced class weights from the training labels). The
    exported weights are those of the best validation ROC-AUC epoch.

    With ``checkpoint_dir``, the state is checkpointed at the end of every epoch; a process
    killed mid-run and started again with the same arguments resumes after the last
    completed epoch, with the early-stopping state and history of the epochs before. A
    checkpoint written by a run with other hyperparameters, features or data is refused.
    The checkpoint is removed once the model is exported. (A resumed run is not
    bit-identical to an uninterrupted one: the shuffling stream restarts with the process.)

    Args:
        train_df: training rows: feature columns and ``is_fraud`` (0/1).
        validation_df: validation rows, same columns; used for early stopping only.
        feature_names: ordered model inputs; None takes every numeric non-key column of
            ``train_df``, sorted by name.
        hparams: hyperparameters.
        output_dir: folder for ``model.keras``, its sha256, ``features.json`` and
            ``metadata.json``; created if missing, refused if it already holds a model.
        checkpoint_dir: folder for resume checkpoints; None disables checkpointing.
        callbacks: extra Keras callbacks, called after each epoch's checkpoint is committed.
        on_resume: called with the number of completed epochs when a checkpoint is restored.

    Returns:
        The paths, sha256, epochs and metrics of the run.

    Raises:
        TrainingDataError: for a missing or non-numeric feature column, NaN/inf features,
            labels other than 0/1, an empty frame, or a single class in train or validation.
        FileExistsError: if ``output_dir`` already holds a trained model.
        kaizen.training.checkpoint.CheckpointMismatchError: if ``checkpoint_dir`` holds the
            checkpoint of a different run.
    """
    if not isinstance(hparams, HyperParameters):
        raise TypeError(f"hparams must be a HyperParameters, got {type(hparams).__name__}")
    output_path = Path(output_dir)
    _check_output_dir(output_path)
    if feature_names is None:
        if not isinstance(train_df, pd.DataFrame):
            raise TrainingDataError(
                f"train data must be a pandas DataFrame, got {type(train_df).__name__}"
            )
        names = default_feature_names(train_df)
    else:
        names = check_feature_names(feature_names)

    train_x = feature_matrix(train_df, names, name="train data")
    train_y = label_vector(train_df, name="train data")
    validation_x = feature_matrix(validation_df, names, name="validation data")
    validation_y = label_vector(validation_df, name="validation data")
    require_both_classes(train_y, name="train data")
    # ROC-AUC, the early-stopping metric, is undefined on a single class.
    require_both_classes(validation_y, name="validation data")
    class_weights = balanced_class_weights(train_y)
    train_sha256 = data_fingerprint(train_x, train_y)
    validation_sha256 = data_fingerprint(validation_x, validation_y)

    keras = import_keras()
    _seed_everything(hparams.seed)
    model = build_model(names, train_x, hparams)

    early_stopping = keras.callbacks.EarlyStopping(
        monitor=MONITOR, mode="max", patience=hparams.patience, restore_best_weights=True
    )
    history = EpochHistory()
    restored = {"epochs": 0}

    def remember_resume(epochs: int) -> None:
        restored["epochs"] = epochs
        if on_resume is not None:
            on_resume(epochs)

    # Order matters: Keras calls callbacks in list order. The backup must see this epoch's
    # early-stopping decision and history entry, and user callbacks (such as the trial's
    # metric printer) run only once the epoch is committed to the checkpoint.
    run_callbacks: list[Any] = [
        # A diverged run (NaN loss, say at a high tuned learning rate) cannot recover.
        keras.callbacks.TerminateOnNaN(),
        early_stopping,
        make_history_recorder(history),
    ]
    checkpoint_path = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if checkpoint_path is not None:
        fingerprint = {
            **hparams.to_dict(),
            "features": names,
            "train_data_sha256": train_sha256,
            "validation_data_sha256": validation_sha256,
        }
        run_callbacks.append(
            make_resumable_backup(
                checkpoint_path,
                early_stopping=early_stopping,
                history=history,
                fingerprint=fingerprint,
                on_resume=remember_resume,
            )
        )
    run_callbacks.extend(callbacks)

    model.fit(
        train_x,
        train_y,
        batch_size=hparams.batch_size,
        epochs=hparams.epochs,
        validation_data=(validation_x, validation_y),
        class_weight=class_weights,
        shuffle=True,
        callbacks=run_callbacks,
        verbose=0,
    )

    columns = history.as_columns()
    epochs_run = len(history.epochs)
    best_epoch = int(early_stopping.best_epoch) + 1
    train_metrics = _evaluate(model, train_x, train_y)
    validation_metrics = _evaluate(model, validation_x, validation_y)

    output_path.mkdir(parents=True, exist_ok=True)
    # Temporary files of an export that was killed before its rename are never read: drop them.
    for stale in output_path.iterdir():
        if _TEMPORARY_FILE.match(stale.name):
            stale.unlink(missing_ok=True)
    model_path = output_path / MODEL_FILE
    # Keras insists on the .keras suffix, so the temporary name keeps it.
    with atomic_path(model_path, suffix=".tmp.keras") as tmp_model:
        model.save(tmp_model)
    sha256 = sha256_file(model_path)
    write_text_atomic(output_path / SHA256_FILE, f"{sha256}  {MODEL_FILE}\n")
    write_text_atomic(output_path / FEATURES_FILE, json.dumps(names, indent=2) + "\n")
    metadata = {
        "format_version": METADATA_FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_file": MODEL_FILE,
        "sha256": sha256,
        "feature_names": names,
        "label": LABEL,
        "hparams": hparams.to_dict(),
        "class_weights": {str(label): weight for label, weight in class_weights.items()},
        "early_stopping": {"monitor": MONITOR, "mode": "max", "patience": hparams.patience},
        "epochs_run": epochs_run,
        "best_epoch": best_epoch,
        "stopped_early": epochs_run < hparams.epochs,
        "resumed_from_epoch": restored["epochs"],
        "metrics": {"train": train_metrics, "validation": validation_metrics},
        "history": columns,
        "data": {
            "train_rows": len(train_y),
            "validation_rows": len(validation_y),
            "train_positives": int(train_y.sum()),
            "validation_positives": int(validation_y.sum()),
            "train_sha256": train_sha256,
            "validation_sha256": validation_sha256,
        },
        "versions": _library_versions(),
    }
    # Written last: a reader that finds metadata.json finds a complete export.
    write_text_atomic(output_path / METADATA_FILE, json.dumps(metadata, indent=2) + "\n")
    if checkpoint_path is not None:
        remove_checkpoint(checkpoint_path)

    return TrainingResult(
        output_dir=output_path,
        model_path=model_path,
        sha256=sha256,
        feature_names=tuple(names),
        hparams=hparams,
        epochs_run=epochs_run,
        best_epoch=best_epoch,
        stopped_early=epochs_run < hparams.epochs,
        resumed_from_epoch=restored["epochs"],
        train_metrics=train_metrics,
        validation_metrics=validation_metrics,
        history=columns,
        train_rows=len(train_y),
        validation_rows=len(validation_y),
    )


def _read_sidecar_sha256(sidecar: Path) -> str:
    text = sidecar.read_text(encoding="utf-8").strip()
    return text.split()[0].lower() if text else ""


def load_model(
    model_dir_or_path: str | os.PathLike[str], expected_sha256: str | None = None
) -> keras.Model:
    """Load an exported model, verifying its sha256 first.

    The digest checked is ``expected_sha256`` when given, else the ``model.keras.sha256``
    file beside the model when there is one. Loading uses Keras ``safe_mode=True``, which
    refuses archives that would run arbitrary code (lambda layers) on load.

    Args:
        model_dir_or_path: an export folder (holding ``model.keras``) or a ``.keras`` file.
        expected_sha256: hex sha256 the file must have (from the registry or metadata).

    Returns:
        The compiled Keras model.

    Raises:
        FileNotFoundError: if there is no model file.
        ModelFileError: for a file that is not ``.keras``, a sha256 mismatch, or an archive
            Keras cannot load (truncated, damaged, unsafe).
        ValueError: if ``expected_sha256`` is not 64 hex digits.
    """
    path = Path(model_dir_or_path)
    if path.is_dir():
        path = path / MODEL_FILE
    if path.suffix != ".keras":
        raise ModelFileError(
            f"refusing to load {path}: expected a Keras v3 '.keras' archive, got a "
            f"'{path.suffix or 'suffix-less'}' file (legacy .h5 and SavedModel are not accepted)"
        )
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")

    source = "expected_sha256"
    expected = expected_sha256
    if expected is None:
        sidecar = path.with_name(path.name + ".sha256")
        if sidecar.is_file():
            expected, source = _read_sidecar_sha256(sidecar), str(sidecar)
    if expected is not None:
        expected = expected.strip().lower()
        if not _SHA256_PATTERN.match(expected):
            raise ValueError(f"{source} must be 64 hex digits, got {expected!r}")
        actual = sha256_file(path)
        if actual != expected:
            raise ModelFileError(
                f"sha256 mismatch for {path}: expected {expected} ({source}), got {actual}; "
                "the file was modified, truncated or replaced"
            )
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{path} is not a Keras archive (not a zip file): truncated or a different format"
        )
    keras = import_keras()
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # Keras raises many types for a bad archive; name the file.
        raise ModelFileError(f"could not load Keras model from {path}: {error}") from error


def predict_proba(
    model: keras.Model, frame: pd.DataFrame, feature_names: Sequence[str]
) -> np.ndarray:
    """Return the fraud probability of every row of ``frame``.

    Args:
        model: a model from ``train`` or ``load_model``.
        frame: rows holding at least the feature columns (the label is not needed).
        feature_names: the ordered feature list the model was trained with
            (``features.json``).

    Returns:
        float64 array of shape ``(len(frame),)`` with values in [0, 1].

    Raises:
        TrainingDataError: for missing, non-numeric or NaN/inf feature columns.
        ValueError: if the model expects a different number of features.
    """
    features = feature_matrix(frame, feature_names, name="scoring data", allow_empty=True)
    expected = model.input_shape[-1]
    if expected is not None and expected != features.shape[1]:
        raise ValueError(
            f"the model expects {expected} features, got {features.shape[1]} feature names"
        )
    if len(features) == 0:
        return np.empty(0, dtype=np.float64)
    if len(features) <= _SCORING_BATCH:
        # A direct call avoids predict()'s per-call dataset setup, which dominates small batches.
        scores = np.asarray(model(features, training=False))
    else:
        scores = model.predict(features, batch_size=_SCORING_BATCH, verbose=0)
    return scores.reshape(-1).astype(np.float64)
