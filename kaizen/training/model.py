"""The fraud model: a tabular Keras MLP and the hyperparameters that shape it.

Keras and TensorFlow are imported inside functions: importing them costs seconds, and this
module is imported by code (CLI, components, tuning) that often never trains.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

# Metric names are part of the contract with the trial program and Katib: the objective
# metric of the Experiment is "val_roc_auc", which Keras derives from the name below.
METRIC_NAMES: tuple[str, ...] = ("roc_auc", "pr_auc", "accuracy")

_MAX_SEED = 2**32 - 1


def import_keras() -> Any:
    """Import Keras on TensorFlow, CPU only, with TensorFlow's C++ logging reduced.

    Every training module imports Keras through this function, so that whichever import
    happens first in a process applies the logging level and hides GPUs.

    Returns:
        The ``keras`` module.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    # RuntimeError: devices were initialised earlier in this process; nothing to change then.
    with contextlib.suppress(RuntimeError):
        tf.config.set_visible_devices([], "GPU")
    return keras


class HyperParameterError(ValueError):
    """A hyperparameter outside its allowed range; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# field -> (kind, low, high, low_inclusive, high_inclusive)
_RANGES: dict[str, tuple[type, float, float, bool, bool]] = {
    "learning_rate": (float, 0.0, 1.0, False, True),
    "num_layers": (int, 1, 8, True, True),
    "units": (int, 1, 1024, True, True),
    "dropout": (float, 0.0, 0.9, True, True),
    "batch_size": (int, 1, 65536, True, True),
    "epochs": (int, 1, 1000, True, True),
    "patience": (int, 0, 1000, True, True),
    "seed": (int, 0, _MAX_SEED, True, True),
}


def _describe_range(low: float, high: float, low_inclusive: bool, high_inclusive: bool) -> str:
    left = "[" if low_inclusive else "("
    right = "]" if high_inclusive else ")"
    return f"{left}{low:g}, {high:g}{right}"


@dataclass(frozen=True)
class HyperParameters:
    """Hyperparameters of one training run; every field is validated on construction.

    Attributes:
        learning_rate: Adam learning rate, in (0, 1].
        num_layers: hidden Dense layers, 1..8.
        units: units per hidden layer, 1..1024.
        dropout: dropout rate after each hidden layer, in [0, 0.9].
        batch_size: training batch size, 1..65536.
        epochs: maximum epochs, 1..1000.
        patience: epochs without validation ROC-AUC improvement before stopping, 0..1000.
        seed: seed for weight initialisation, shuffling and dropout, 0..2**32-1.
    """

    learning_rate: float = 1e-3
    num_layers: int = 2
    units: int = 64
    dropout: float = 0.1
    batch_size: int = 256
    epochs: int = 15
    patience: int = 3
    seed: int = 42

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            kind, low, high, low_inclusive, high_inclusive = _RANGES[field.name]
            allowed = _describe_range(low, high, low_inclusive, high_inclusive)
            # bool is an int subclass; True as a layer count is a bug, not a value.
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                expected = "an integer" if kind is int else "a number"
                raise HyperParameterError(
                    field.name,
                    f"{field.name} must be {expected} in {allowed}, got {value!r}",
                )
            if kind is int and not isinstance(value, int):
                raise HyperParameterError(
                    field.name, f"{field.name} must be an integer in {allowed}, got {value!r}"
                )
            above_low = value >= low if low_inclusive else value > low
            below_high = value <= high if high_inclusive else value < high
            if not (math.isfinite(value) and above_low and below_high):
                raise HyperParameterError(
                    field.name, f"{field.name} must be in {allowed}, got {value!r}"
                )

    def to_dict(self) -> dict[str, Any]:
        """Return the hyperparameters as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> HyperParameters:
        """Build from a dict, refusing unknown keys (a typo must not silently become a default).

        Args:
            values: field name to value; missing fields take their defaults.

        Returns:
            The validated hyperparameters.

        Raises:
            HyperParameterError: for an unknown key or a value outside its range.
        """
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise HyperParameterError(
                unknown[0], f"unknown hyperparameter(s) {unknown}; expected some of {sorted(known)}"
            )
        return cls(**values)

    def with_assignments(self, assignments: Mapping[str, str]) -> HyperParameters:
        """These hyperparameters with a search's string assignments (Katib's) typed in.

        Only the searchable fields (``SEARCHABLE``) are read from ``assignments``; every
        other value, and a searchable one the search did not set, is kept.

        Raises:
            HyperParameterError: an assignment is not a number of its field's type, or is
                outside the field's range.
        """
        chosen: dict[str, Any] = self.to_dict()
        for name in SEARCHABLE:
            if name not in assignments:
                continue
            raw = assignments[name]
            try:
                number = float(raw)
            except ValueError:
                raise HyperParameterError(name, f"tuned {name}={raw!r} is not a number") from None
            if _RANGES[name][0] is int:
                if not number.is_integer():
                    raise HyperParameterError(name, f"tuned {name}={raw!r} is not a whole number")
                chosen[name] = int(number)
            else:
                chosen[name] = number
        return HyperParameters(**chosen)


# The fields a Katib Experiment may search; the rest (epochs, patience, seed) are run settings.
SEARCHABLE: tuple[str, ...] = ("learning_rate", "num_layers", "units", "dropout", "batch_size")
DEFAULT_HYPERPARAMETERS = HyperParameters()


def build_model(
    feature_names: Sequence[str],
    normalizer_data: np.ndarray,
    hparams: HyperParameters,
) -> keras.Model:
    """Build and compile the tabular MLP.

    The Normalization layer is adapted on ``normalizer_data``, which must be the training
    features only: adapting on validation or test rows would leak their statistics.

    Args:
        feature_names: ordered model inputs; column ``i`` of every input matrix is feature ``i``.
        normalizer_data: training feature matrix, shape ``(rows, len(feature_names))``.
        hparams: layer count, width, dropout, learning rate and seed.

    Returns:
        A compiled ``keras.Model`` mapping ``(batch, features)`` float32 to a fraud
        probability ``(batch, 1)``, with metrics ``roc_auc``, ``pr_auc`` and ``accuracy``.

    Raises:
        ValueError: if the feature list is empty or has duplicates, or ``normalizer_data``
            has the wrong shape, no rows, or non-finite values.
    """
    names = list(feature_names)
    if not names:
        raise ValueError("feature_names is empty: the model needs at least one input feature")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"feature_names has duplicates: {duplicates}")
    data = np.asarray(normalizer_data, dtype=np.float32)
    if data.ndim != 2 or data.shape[1] != len(names):
        raise ValueError(
            f"normalizer_data must have shape (rows, {len(names)}) to match feature_names, "
            f"got {data.shape}"
        )
    if data.shape[0] == 0:
        raise ValueError("normalizer_data has no rows: adapt the normalizer on training data")
    if not np.isfinite(data).all():
        raise ValueError("normalizer_data has NaN or infinite values")

    keras = import_keras()

    # Explicit per-layer seeds make the model a function of hparams.seed alone, whatever
    # the global RNG state of the process is.
    inputs = keras.Input(shape=(len(names),), dtype="float32", name="features")
    normalizer = keras.layers.Normalization(axis=-1, name="normalize")
    normalizer.adapt(data)
    x = normalizer(inputs)
    for index in range(hparams.num_layers):
        x = keras.layers.Dense(
            hparams.units,
            activation="relu",
            kernel_initializer=keras.initializers.GlorotUniform(seed=hparams.seed + index),
            name=f"dense_{index + 1}",
        )(x)
        x = keras.layers.Dropout(
            hparams.dropout, seed=hparams.seed + 1000 + index, name=f"dropout_{index + 1}"
        )(x)
    outputs = keras.layers.Dense(
        1,
        activation="sigmoid",
        kernel_initializer=keras.initializers.GlorotUniform(seed=hparams.seed + 999),
        name="fraud_probability",
    )(x)
    model = keras.Model(inputs=inputs, outputs=outputs, name="kaizen_fraud_mlp")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=hparams.learning_rate),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[
            keras.metrics.AUC(name="roc_auc"),
            keras.metrics.AUC(curve="PR", name="pr_auc"),
            keras.metrics.BinaryAccuracy(name="accuracy"),
        ],
    )
    return model
