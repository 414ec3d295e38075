"""Resume from a checkpoint keeps what an interrupted run had learned, early stopping included.

The interruption here is an exception raised by a callback after an epoch was checkpointed
(as Keras' own BackupAndRestore tests do); the SIGKILL version is
tests/integration/test_resume_after_kill.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kaizen.training.checkpoint import CheckpointMismatchError
from kaizen.training.model import HyperParameters
from kaizen.training.train import train

FEATURES = ["amount_zscore", "merchant_risk", "velocity_1h", "noise"]


class Interrupted(RuntimeError):
    pass


def interrupt_when(condition: Callable[[int, dict[str, float], Any], bool]) -> Any:
    """A callback raising at the end of the first epoch where ``condition`` holds.

    Its ``logs`` list holds the logs of every epoch it saw.
    """
    import keras  # lazily: collecting this file must not cost a TensorFlow import

    class InterruptWhen(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.logs: list[dict[str, float]] = []

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.logs.append(dict(logs or {}))
            if condition(epoch, self.logs[-1], self.model):
                raise Interrupted(f"interrupted after epoch {epoch + 1}")

    return InterruptWhen()


def epoch_counter() -> Any:
    """A callback whose ``epochs`` list holds the 1-based epochs that were started."""
    import keras

    class EpochCounter(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.epochs: list[int] = []

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.epochs.append(epoch + 1)

    return EpochCounter()


@pytest.fixture
def frames(make_frame: Callable[..., pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    return make_frame(2000, seed=1), make_frame(600, seed=2)


def test_resume_keeps_a_best_epoch_from_before_the_interruption(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    train_df, validation_df = frames
    hparams = HyperParameters(epochs=8, patience=8, batch_size=128, units=32, learning_rate=0.01)
    checkpoint_dir = tmp_path / "checkpoint"
    checkpoint_dir.mkdir()
    (checkpoint_dir / "notes.txt").write_text("not ours")
    best_so_far: list[float] = []

    def first_worse_epoch(epoch: int, logs: dict[str, float], model: Any) -> bool:
        worse = bool(best_so_far) and logs["val_roc_auc"] < max(best_so_far)
        best_so_far.append(logs["val_roc_auc"])
        return worse

    interrupter = interrupt_when(first_worse_epoch)
    with pytest.raises(Interrupted):
        train(
            train_df,
            validation_df,
            FEATURES,
            hparams,
            tmp_path / "model",
            checkpoint_dir,
            callbacks=[interrupter],
        )
    done = len(interrupter.logs)
    best_before = max(best_so_far)

    counter = epoch_counter()
    resumed: list[int] = []
    result = train(
        train_df,
        validation_df,
        FEATURES,
        hparams,
        tmp_path / "model",
        checkpoint_dir,
        callbacks=[counter],
        on_resume=resumed.append,
    )

    assert resumed == [done]
    assert result.resumed_from_epoch == done
    assert counter.epochs == list(range(done + 1, 9))
    assert result.epochs_run == 8
    # The epochs before the interruption are in the history as they were logged.
    assert result.history["val_roc_auc"][:done] == [
        logs["val_roc_auc"] for logs in interrupter.logs
    ]
    # Early stopping compared all 8 epochs: the exported model is the overall best one,
    # which may well be from before the interruption.
    overall_best = max(result.history["val_roc_auc"])
    assert overall_best >= best_before
    assert result.best_epoch == result.history["val_roc_auc"].index(overall_best) + 1
    assert result.validation_metrics["roc_auc"] == pytest.approx(overall_best, abs=1e-6)
    # The checkpoint is removed once exported; a file that was not ours stays.
    assert sorted(path.name for path in checkpoint_dir.iterdir()) == ["notes.txt"]


def test_run_that_had_stopped_early_does_not_train_on_after_a_restart(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    train_df, validation_df = frames
    hparams = HyperParameters(epochs=30, patience=0, batch_size=128, units=32, learning_rate=0.01)
    # Killed after the early-stopping decision was checkpointed, before fit() returned.
    interrupter = interrupt_when(lambda epoch, logs, model: bool(model.stop_training))
    with pytest.raises(Interrupted):
        train(
            train_df,
            validation_df,
            FEATURES,
            hparams,
            tmp_path / "model",
            tmp_path / "checkpoint",
            callbacks=[interrupter],
        )
    stopped_after = len(interrupter.logs)
    assert stopped_after < 30

    counter = epoch_counter()
    result = train(
        train_df,
        validation_df,
        FEATURES,
        hparams,
        tmp_path / "model",
        tmp_path / "checkpoint",
        callbacks=[counter],
    )

    assert counter.epochs == []
    assert result.epochs_run == stopped_after
    assert result.stopped_early
    val_auc = result.history["val_roc_auc"]
    assert result.best_epoch == val_auc.index(max(val_auc)) + 1
    assert result.validation_metrics["roc_auc"] == pytest.approx(max(val_auc), abs=1e-6)
    assert not (tmp_path / "checkpoint").exists()


def test_checkpoint_of_another_run_is_refused_and_kept(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    train_df, validation_df = frames
    hparams = HyperParameters(epochs=3, batch_size=256, units=8)
    with pytest.raises(Interrupted):
        train(
            train_df,
            validation_df,
            FEATURES,
            hparams,
            tmp_path / "model",
            tmp_path / "checkpoint",
            callbacks=[interrupt_when(lambda epoch, logs, model: True)],
        )
    state_before = (tmp_path / "checkpoint" / "training_state.json").read_text()

    other = HyperParameters(epochs=3, batch_size=256, units=8, learning_rate=0.01)
    with pytest.raises(
        CheckpointMismatchError,
        match=r"different training run \(learning_rate: checkpoint has 0\.001, this run has 0\.01",
    ):
        train(train_df, validation_df, FEATURES, other, tmp_path / "model", tmp_path / "checkpoint")
    changed_data = validation_df.assign(noise=validation_df["noise"] + 1.0)
    with pytest.raises(CheckpointMismatchError, match="validation_data_sha256"):
        train(
            train_df, changed_data, FEATURES, hparams, tmp_path / "model", tmp_path / "checkpoint"
        )

    assert (tmp_path / "checkpoint" / "training_state.json").read_text() == state_before
    assert json.loads(state_before)["epoch"] == 1
