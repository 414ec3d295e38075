"""Crash-safe resume for ``model.fit``: Keras ``BackupAndRestore`` plus what it leaves out.

Keras 3.15's ``BackupAndRestore`` saves the weights, the optimizer state and the epoch
counter at the end of every epoch and restores them when ``fit`` starts again. On its own
that is not a correct resume for our training loop:

* ``EarlyStopping`` state (best value, best epoch, best weights, patience counter) is not
  saved. After a restart the callback starts from scratch, so ``restore_best_weights`` can
  only pick among the epochs run after the restart, and a better epoch from before the
  crash is silently lost; the patience counter resets; and a run that had already decided
  to stop, and was killed before ``fit`` returned, trains on.
* ``fit`` returns a ``History`` of the epochs run after the restart only.
* the weights file and the epoch counter are two writes: a kill between them resumes the
  wrong epoch from the right weights (or the reverse).
* the backup is deleted in ``on_train_end``, before the caller has exported the model; a
  kill during the export loses the whole run.

``make_resumable_backup`` returns a ``BackupAndRestore`` subclass that stores all of that in
one state file, written atomically after the files it points to, and never deletes the
checkpoint itself: the caller calls ``remove_checkpoint`` once the model is exported.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kaizen.platform.fileio import atomic_path, write_json_atomic
from kaizen.training.model import import_keras

if TYPE_CHECKING:
    import keras

STATE_FILE = "training_state.json"
_FORMAT_VERSION = 1
_OWN_FILE = re.compile(
    r"^(\.?training_state\.json(\.\w+\.tmp)?|epoch-\d+\.weights\.h5"
    r"|\.?best-epoch-\d+\.npz(\.\w+\.tmp)?)$"
)


class CheckpointMismatchError(ValueError):
    """The checkpoint directory holds the state of a different training run."""


class EpochHistory:
    """Per-epoch logs of a run, including epochs restored from a checkpoint."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []

    def as_columns(self) -> dict[str, list[float]]:
        """Return ``{metric: [value per epoch]}``, the shape of ``keras.callbacks.History``."""
        columns: dict[str, list[float]] = {}
        for logs in self.epochs:
            for key, value in logs.items():
                columns.setdefault(key, []).append(value)
        return columns


def make_history_recorder(history: EpochHistory) -> keras.callbacks.Callback:
    """Return a callback that appends every epoch's logs to ``history``."""
    callback_base: Any = import_keras().callbacks.Callback

    class _HistoryRecorder(callback_base):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            history.epochs.append({key: float(value) for key, value in (logs or {}).items()})

    return _HistoryRecorder()


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def read_state(checkpoint_dir: Path) -> dict[str, Any] | None:
    """Return the committed training state in ``checkpoint_dir``, or None if there is none."""
    path = checkpoint_dir / STATE_FILE
    if not path.exists():
        return None
    try:
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointMismatchError(
            f"checkpoint state {path} is unreadable ({error}); delete {checkpoint_dir} to "
            "start the run from scratch"
        ) from error
    if state.get("format") != _FORMAT_VERSION:
        raise CheckpointMismatchError(
            f"checkpoint state {path} has format {state.get('format')!r}, expected "
            f"{_FORMAT_VERSION}; delete {checkpoint_dir} to start the run from scratch"
        )
    return state


def remove_checkpoint(checkpoint_dir: Path) -> None:
    """Delete the files this module wrote in ``checkpoint_dir``, and the folder if then empty.

    Only our own file names are removed, so a checkpoint directory that was pointed at a
    folder holding other files never loses them.
    """
    if not checkpoint_dir.is_dir():
        return
    # The state file goes first: once it is gone, no reader can follow it to a deleted file.
    (checkpoint_dir / STATE_FILE).unlink(missing_ok=True)
    for path in checkpoint_dir.iterdir():
        if _OWN_FILE.match(path.name):
            path.unlink(missing_ok=True)
    # Left in place when not empty: it then holds files that are not ours.
    with contextlib.suppress(OSError):
        checkpoint_dir.rmdir()


def make_resumable_backup(
    checkpoint_dir: Path,
    *,
    early_stopping: keras.callbacks.EarlyStopping,
    history: EpochHistory,
    fingerprint: dict[str, Any],
    on_resume: Callable[[int], None] | None = None,
) -> keras.callbacks.BackupAndRestore:
    """Return a ``BackupAndRestore`` that also checkpoints early stopping and history.

    Place it after ``early_stopping`` and the history recorder in the callback list: Keras
    calls callbacks in list order, so at epoch end the state it saves already includes the
    epoch, and at train begin it restores the early-stopping state after that callback
    has reset itself.

    Args:
        checkpoint_dir: folder for the state; created on first save.
        early_stopping: the run's EarlyStopping callback, whose state is saved and restored.
        history: the run's epoch logs, saved and restored with the epoch counter.
        fingerprint: what identifies the run (hyperparameters, features, data digests); a
            checkpoint written with another fingerprint is refused, never resumed.
        on_resume: called with the number of completed epochs when a checkpoint is restored.

    Returns:
        The callback.

    Raises:
        CheckpointMismatchError: at train begin, if the checkpoint belongs to another run.
    """
    backup_base: Any = import_keras().callbacks.BackupAndRestore

    class _ResumableBackup(backup_base):
        def __init__(self) -> None:
            # The checkpoint outlives fit(): it is removed only after the model is exported.
            super().__init__(str(checkpoint_dir), save_freq="epoch", delete_checkpoint=False)
            self.restored_epochs = 0

        def _load_model(self) -> None:
            state = read_state(checkpoint_dir)
            if state is None:
                return
            _check_fingerprint(checkpoint_dir, state["fingerprint"], fingerprint)
            if self.model.optimizer is not None and not self.model.optimizer.built:
                # The optimizer variables must exist before load_weights can fill them.
                self.model.optimizer.build(self.model.trainable_variables)
            self.model.load_weights(str(checkpoint_dir / state["weights"]))
            stopping = state["early_stopping"]
            early_stopping.best = stopping["best"]
            early_stopping.best_epoch = stopping["best_epoch"]
            early_stopping.wait = stopping["wait"]
            early_stopping.stopped_epoch = stopping["stopped_epoch"]
            if stopping["best_weights"] is not None:
                with np.load(checkpoint_dir / stopping["best_weights"]) as saved:
                    early_stopping.best_weights = [
                        saved[f"w{index}"] for index in range(len(saved.files))
                    ]
            history.epochs[:] = state["history"]
            epoch = int(state["epoch"])
            self._current_epoch = epoch
            self.restored_epochs = epoch
            # A run that had decided to stop must not train on after a restart.
            self.model._initial_epoch = self.params["epochs"] if state["stopped"] else epoch
            if on_resume is not None:
                on_resume(epoch)

        def _save_model(self) -> None:
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
            epoch = self._current_epoch
            weights_name = f"epoch-{epoch:04d}.weights.h5"
            self.model.save_weights(str(checkpoint_dir / weights_name), overwrite=True)
            _fsync(checkpoint_dir / weights_name)
            best_name = None
            if early_stopping.best_weights is not None:
                best_name = f"best-epoch-{early_stopping.best_epoch + 1:04d}.npz"
                if not (checkpoint_dir / best_name).exists():
                    with atomic_path(checkpoint_dir / best_name) as tmp, open(tmp, "wb") as out:
                        np.savez(
                            out,
                            **{f"w{i}": w for i, w in enumerate(early_stopping.best_weights)},
                        )
            best = early_stopping.best
            state = {
                "format": _FORMAT_VERSION,
                "fingerprint": fingerprint,
                "epoch": epoch,
                "weights": weights_name,
                "stopped": bool(self.model.stop_training),
                "early_stopping": {
                    "best": None if best is None else float(best),
                    "best_epoch": int(early_stopping.best_epoch),
                    "wait": int(early_stopping.wait),
                    "stopped_epoch": int(early_stopping.stopped_epoch),
                    "best_weights": best_name,
                },
                "history": history.epochs,
            }
            # The commit point: before this replace a restart sees the previous epoch's
            # complete state, after it this epoch's.
            write_json_atomic(checkpoint_dir / STATE_FILE, state)
            for path in checkpoint_dir.iterdir():
                if _OWN_FILE.match(path.name) and path.name not in (
                    STATE_FILE,
                    weights_name,
                    best_name,
                ):
                    path.unlink(missing_ok=True)

    return _ResumableBackup()


def _check_fingerprint(
    checkpoint_dir: Path, saved: dict[str, Any], current: dict[str, Any]
) -> None:
    differing = sorted(
        key for key in set(saved) | set(current) if saved.get(key) != current.get(key)
    )
    if differing:
        details = "; ".join(
            f"{key}: checkpoint has {saved.get(key)!r}, this run has {current.get(key)!r}"
            for key in differing
        )
        raise CheckpointMismatchError(
            f"checkpoint in {checkpoint_dir} was written by a different training run "
            f"({details}); use another checkpoint directory or delete this one"
        )
