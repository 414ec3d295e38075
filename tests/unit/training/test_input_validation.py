"""train() refuses unusable data before training, with a message naming the problem."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kaizen.data.columns import LABEL
from kaizen.training.data import (
    TrainingDataError,
    balanced_class_weights,
    default_feature_names,
)
from kaizen.training.model import HyperParameters
from kaizen.training.train import train

FrameFactory = Callable[..., pd.DataFrame]
FEATURES = ["amount_zscore", "merchant_risk", "velocity_1h", "noise"]


def _train(train_df: pd.DataFrame, validation_df: pd.DataFrame, tmp_path: Path, **kwargs: object):
    features = kwargs.pop("features", FEATURES)
    return train(
        train_df,
        validation_df,
        features,  # type: ignore[arg-type]
        HyperParameters(epochs=1),
        tmp_path / "model",
        **kwargs,  # type: ignore[arg-type]
    )


def test_missing_feature_column_is_named(make_frame: FrameFactory, tmp_path: Path) -> None:
    train_df = make_frame(50, seed=1).drop(columns=["velocity_1h"])
    with pytest.raises(
        TrainingDataError, match=r"train data is missing feature column\(s\) \['velocity_1h'\]"
    ):
        _train(train_df, make_frame(50, seed=2), tmp_path)


def test_missing_column_in_validation_names_validation(
    make_frame: FrameFactory, tmp_path: Path
) -> None:
    validation_df = make_frame(50, seed=2).drop(columns=["noise"])
    with pytest.raises(TrainingDataError, match=r"validation data is missing .*\['noise'\]"):
        _train(make_frame(50, seed=1), validation_df, tmp_path)


def test_non_numeric_feature_is_refused(make_frame: FrameFactory, tmp_path: Path) -> None:
    train_df = make_frame(50, seed=1)
    train_df["merchant_risk"] = train_df["merchant_risk"].map(lambda v: f"{v:.2f}")
    with pytest.raises(
        TrainingDataError, match=r"feature column 'merchant_risk' in train data has dtype object"
    ):
        _train(train_df, make_frame(50, seed=2), tmp_path)


def test_nan_and_inf_are_counted_per_column(make_frame: FrameFactory, tmp_path: Path) -> None:
    train_df = make_frame(50, seed=1)
    train_df.loc[[3, 7, 9], "noise"] = np.nan
    train_df.loc[5, "amount_zscore"] = np.inf
    with pytest.raises(TrainingDataError) as caught:
        _train(train_df, make_frame(50, seed=2), tmp_path)
    message = str(caught.value)
    assert "train data has NaN or infinite feature values" in message
    assert "'amount_zscore' (1 rows)" in message
    assert "'noise' (3 rows)" in message
    assert "at row index 5" in message


def test_value_beyond_float32_range_is_refused(make_frame: FrameFactory, tmp_path: Path) -> None:
    # Finite as float64, infinite once cast to the model's float32.
    validation_df = make_frame(50, seed=2)
    validation_df.loc[0, "noise"] = 1e300
    with pytest.raises(TrainingDataError, match=r"validation data .*'noise' \(1 rows\)"):
        _train(make_frame(50, seed=1), validation_df, tmp_path)


def test_label_other_than_zero_one_is_refused(make_frame: FrameFactory, tmp_path: Path) -> None:
    train_df = make_frame(50, seed=1)
    train_df.loc[[4, 8], LABEL] = 2
    with pytest.raises(
        TrainingDataError,
        match=r"label column 'is_fraud' in train data must be 0 or 1; 2 rows hold other "
        r"values such as 2 \(first at row index 4\)",
    ):
        _train(train_df, make_frame(50, seed=2), tmp_path)


def test_missing_label_is_refused(make_frame: FrameFactory, tmp_path: Path) -> None:
    validation_df = make_frame(50, seed=2).drop(columns=[LABEL])
    with pytest.raises(TrainingDataError, match="validation data has no label column 'is_fraud'"):
        _train(make_frame(50, seed=1), validation_df, tmp_path)


def test_empty_frame_is_refused(make_frame: FrameFactory, tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match=r"train data is empty \(0 rows\)"):
        _train(make_frame(50, seed=1).iloc[0:0], make_frame(50, seed=2), tmp_path)


def test_single_class_in_train_is_refused(make_frame: FrameFactory, tmp_path: Path) -> None:
    train_df = make_frame(50, seed=1)
    train_df[LABEL] = 0
    with pytest.raises(
        TrainingDataError, match=r"train data has a single class: all 50 rows have is_fraud=0"
    ):
        _train(train_df, make_frame(50, seed=2), tmp_path)


def test_single_class_in_validation_is_refused(make_frame: FrameFactory, tmp_path: Path) -> None:
    validation_df = make_frame(50, seed=2)
    validation_df[LABEL] = 1
    with pytest.raises(TrainingDataError, match=r"validation data has a single class.*is_fraud=1"):
        _train(make_frame(50, seed=1), validation_df, tmp_path)


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ([], "the feature list is empty"),
        (["noise", "noise"], r"duplicates: \['noise'\]"),
        (["noise", LABEL], r"\['is_fraud'\] cannot be features"),
        ("noise", "must be a list of column names"),
    ],
)
def test_bad_feature_list_is_refused(
    make_frame: FrameFactory, tmp_path: Path, features: object, message: str
) -> None:
    with pytest.raises(TrainingDataError, match=message):
        _train(make_frame(50, seed=1), make_frame(50, seed=2), tmp_path, features=features)


def test_default_features_are_numeric_non_key_columns_sorted(make_frame: FrameFactory) -> None:
    frame = make_frame(20, seed=1)
    frame["channel"] = "web"  # text: not a model input
    # customer_id is numeric here, but keys are never features.
    assert default_feature_names(frame) == sorted(FEATURES)


def test_refuses_to_overwrite_a_trained_model(make_frame: FrameFactory, tmp_path: Path) -> None:
    output_dir = tmp_path / "model"
    output_dir.mkdir()
    (output_dir / "metadata.json").write_text("{}")
    (output_dir / "model.keras").write_bytes(b"the good model")
    with pytest.raises(FileExistsError, match="already holds a trained model"):
        _train(make_frame(50, seed=1), make_frame(50, seed=2), tmp_path)
    assert (output_dir / "model.keras").read_bytes() == b"the good model"


def test_balanced_class_weights_equalise_class_totals() -> None:
    labels = np.array([0] * 95 + [1] * 5, dtype=np.float32)
    weights = balanced_class_weights(labels)
    assert weights == pytest.approx({0: 100 / 190, 1: 10.0})
    # Both classes then carry the same total weight in the loss.
    assert 95 * weights[0] == pytest.approx(5 * weights[1])
