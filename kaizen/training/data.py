"""Turn training/validation frames into model inputs, refusing bad data with clear errors."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from kaizen.data.columns import LABEL, NON_FEATURE_COLUMNS


class TrainingDataError(ValueError):
    """A frame that cannot be used for training or scoring; the message says why."""


def default_feature_names(frame: pd.DataFrame) -> list[str]:
    """Return every numeric column that is not a key, timestamp or label, sorted by name.

    Args:
        frame: a training set with feature columns beside the non-feature columns.

    Returns:
        The sorted feature names.

    Raises:
        TrainingDataError: if the frame has no numeric feature column.
    """
    names = sorted(
        str(column)
        for column in frame.columns
        if column not in NON_FEATURE_COLUMNS and is_numeric_dtype(frame[column].dtype)
    )
    if not names:
        raise TrainingDataError(
            f"no numeric feature columns found; columns are {list(map(str, frame.columns))} "
            f"and {sorted(NON_FEATURE_COLUMNS)} are never features"
        )
    return names


def check_feature_names(feature_names: Sequence[str]) -> list[str]:
    """Validate an ordered feature list and return it as a list.

    Args:
        feature_names: the ordered model inputs.

    Returns:
        The same names, as a list.

    Raises:
        TrainingDataError: if the list is empty, has duplicates or names a non-feature column.
    """
    if isinstance(feature_names, str):
        raise TrainingDataError(
            f"feature_names must be a list of column names, got the string {feature_names!r}"
        )
    names = list(feature_names)
    if not names:
        raise TrainingDataError("the feature list is empty: the model needs at least one feature")
    not_strings = [name for name in names if not isinstance(name, str) or not name]
    if not_strings:
        raise TrainingDataError(f"feature names must be non-empty strings, got {not_strings}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise TrainingDataError(f"the feature list has duplicates: {duplicates}")
    reserved = [name for name in names if name in NON_FEATURE_COLUMNS]
    if reserved:
        raise TrainingDataError(
            f"{reserved} cannot be features: keys, timestamps and the label "
            f"{sorted(NON_FEATURE_COLUMNS)} are never model inputs"
        )
    return names


def feature_matrix(
    frame: pd.DataFrame, feature_names: Sequence[str], *, name: str, allow_empty: bool = False
) -> np.ndarray:
    """Return the features of ``frame`` as a float32 matrix in ``feature_names`` order.

    Args:
        frame: rows to convert.
        feature_names: ordered feature columns.
        name: what the frame is ("train data", "validation data"), used in error messages.
        allow_empty: accept a frame with no rows (scoring an empty batch).

    Returns:
        Array of shape ``(len(frame), len(feature_names))``, dtype float32.

    Raises:
        TrainingDataError: if the frame is not a DataFrame, is empty, misses a feature column,
            has a non-numeric feature column or NaN/infinite feature values.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TrainingDataError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    names = check_feature_names(feature_names)
    if len(frame) == 0 and not allow_empty:
        raise TrainingDataError(f"{name} is empty (0 rows)")
    missing = [column for column in names if column not in frame.columns]
    if missing:
        raise TrainingDataError(
            f"{name} is missing feature column(s) {missing}; it has columns "
            f"{list(map(str, frame.columns))}"
        )
    for column in names:
        dtype = frame[column].dtype
        if not is_numeric_dtype(dtype) or is_bool_dtype(dtype):
            raise TrainingDataError(
                f"feature column {column!r} in {name} has dtype {dtype}; expected a numeric "
                "(integer or float) column"
            )
    # Checked after the float32 cast: a finite float64 beyond float32's range becomes inf.
    with np.errstate(over="ignore"):
        matrix = frame[names].to_numpy(dtype=np.float32)
    bad = ~np.isfinite(matrix)
    if bad.any():
        bad_columns = np.flatnonzero(bad.any(axis=0))
        column_index = int(bad_columns[0])
        rows = np.flatnonzero(bad[:, column_index])
        details = ", ".join(
            f"{names[index]!r} ({int(bad[:, index].sum())} rows)" for index in bad_columns
        )
        raise TrainingDataError(
            f"{name} has NaN or infinite feature values: {details}; first bad value in column "
            f"{names[column_index]!r} at row index {frame.index[rows[0]]!r}"
        )
    return matrix


def label_vector(frame: pd.DataFrame, *, name: str) -> np.ndarray:
    """Return the ``is_fraud`` labels of ``frame`` as a float32 vector of 0.0 and 1.0.

    Args:
        frame: rows with the label column.
        name: what the frame is, used in error messages.

    Returns:
        Array of shape ``(len(frame),)``, dtype float32.

    Raises:
        TrainingDataError: if the label column is missing or holds anything but 0 and 1.
    """
    if LABEL not in frame.columns:
        raise TrainingDataError(f"{name} has no label column {LABEL!r}")
    labels = frame[LABEL]
    if not (is_numeric_dtype(labels.dtype) or is_bool_dtype(labels.dtype)):
        raise TrainingDataError(
            f"label column {LABEL!r} in {name} has dtype {labels.dtype}; expected 0/1 integers"
        )
    values = labels.to_numpy(dtype=np.float64, na_value=np.nan)
    invalid = ~np.isin(values, (0.0, 1.0))
    if invalid.any():
        found = sorted({repr(v) for v in labels[invalid].head(1000).tolist()})[:5]
        first = frame.index[int(np.flatnonzero(invalid)[0])]
        raise TrainingDataError(
            f"label column {LABEL!r} in {name} must be 0 or 1; {int(invalid.sum())} rows hold "
            f"other values such as {', '.join(found)} (first at row index {first!r})"
        )
    return values.astype(np.float32)


def require_both_classes(labels: np.ndarray, *, name: str) -> None:
    """Refuse labels that hold a single class: ROC-AUC and class weights need both.

    Raises:
        TrainingDataError: if every label is 0 or every label is 1.
    """
    positives = int(labels.sum())
    if positives == 0 or positives == len(labels):
        only = 1 if positives else 0
        raise TrainingDataError(
            f"{name} has a single class: all {len(labels)} rows have {LABEL}={only}; "
            "training needs both fraud (1) and legitimate (0) rows"
        )


def balanced_class_weights(labels: np.ndarray) -> dict[int, float]:
    """Weights that make both classes contribute equally to the loss.

    ``weight[c] = rows / (2 * rows_of_class_c)``, as scikit-learn's ``"balanced"``: with
    fraud at 1 %, a fraud row counts 50 times and a legitimate row about 0.5 times.

    Args:
        labels: 0/1 training labels holding both classes.

    Returns:
        ``{0: weight, 1: weight}``.
    """
    total = len(labels)
    positives = int(np.asarray(labels).sum())
    negatives = total - positives
    return {0: total / (2.0 * negatives), 1: total / (2.0 * positives)}


def data_fingerprint(features: np.ndarray, labels: np.ndarray) -> str:
    """Return a sha256 over the exact feature and label values (identifies a data set)."""
    digest = hashlib.sha256()
    digest.update(str(features.shape).encode())
    digest.update(np.ascontiguousarray(features).tobytes())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()
