"""HyperParameters validation and the model builder."""

from __future__ import annotations

import numpy as np
import pytest

from kaizen.training.model import HyperParameterError, HyperParameters, build_model


def test_defaults_are_the_documented_ones() -> None:
    assert HyperParameters().to_dict() == {
        "learning_rate": 1e-3,
        "num_layers": 2,
        "units": 64,
        "dropout": 0.1,
        "batch_size": 256,
        "epochs": 15,  # the pipeline's; the trainer used 20 until they were one definition
        "patience": 3,
        "seed": 42,
    }


@pytest.mark.parametrize(
    ("field", "value", "expected_range"),
    [
        ("learning_rate", 0.0, "(0, 1]"),
        ("learning_rate", 1.5, "(0, 1]"),
        ("learning_rate", float("nan"), "(0, 1]"),
        ("num_layers", 0, "[1, 8]"),
        ("num_layers", 9, "[1, 8]"),
        ("units", 0, "[1, 1024]"),
        ("units", 1025, "[1, 1024]"),
        ("dropout", -0.1, "[0, 0.9]"),
        ("dropout", 0.95, "[0, 0.9]"),
        ("batch_size", 0, "[1, 65536]"),
        ("epochs", 0, "[1, 1000]"),
        ("patience", -1, "[0, 1000]"),
        ("seed", -1, "[0, 4.29497e+09]"),
    ],
)
def test_out_of_range_value_names_field_and_range(
    field: str, value: float, expected_range: str
) -> None:
    with pytest.raises(HyperParameterError) as caught:
        HyperParameters(**{field: value})
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field} must be")
    assert expected_range in str(caught.value)
    assert repr(value) in str(caught.value)


@pytest.mark.parametrize(
    ("field", "value"), [("num_layers", 2.0), ("units", True), ("learning_rate", "0.01")]
)
def test_wrong_type_is_refused(field: str, value: object) -> None:
    with pytest.raises(HyperParameterError, match=f"^{field} must be an? (integer|number)"):
        HyperParameters(**{field: value})  # type: ignore[arg-type]


def test_boundaries_are_accepted() -> None:
    hparams = HyperParameters(learning_rate=1.0, num_layers=8, units=1, dropout=0.0, patience=0)
    assert hparams.learning_rate == 1.0
    assert HyperParameters(dropout=0.9, num_layers=1, units=1024).units == 1024


def test_hyperparameters_are_frozen() -> None:
    hparams = HyperParameters()
    with pytest.raises(AttributeError):
        hparams.units = 8  # type: ignore[misc]


def test_from_dict_refuses_unknown_keys() -> None:
    assert HyperParameters.from_dict({"units": 16}).units == 16
    with pytest.raises(HyperParameterError, match=r"unknown hyperparameter\(s\) \['unit'\]"):
        HyperParameters.from_dict({"unit": 16})


def test_model_shape_layers_and_metrics() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(loc=5.0, scale=3.0, size=(500, 3)).astype(np.float32)
    model = build_model(["a", "b", "c"], data, HyperParameters(num_layers=3, units=16))

    assert model.input_shape == (None, 3)
    assert model.output_shape == (None, 1)
    dense = [layer for layer in model.layers if layer.name.startswith("dense_")]
    assert [layer.units for layer in dense] == [16, 16, 16]
    assert model.get_layer("fraud_probability").activation.__name__ == "sigmoid"
    labels = (data[:, 0] > 5.0).astype(np.float32)
    results = model.evaluate(data, labels, verbose=0, return_dict=True)
    assert set(results) == {"loss", "roc_auc", "pr_auc", "accuracy"}
    scores = np.asarray(model(data[:10], training=False))
    assert ((scores > 0) & (scores < 1)).all()


def test_normalizer_uses_the_data_it_was_given() -> None:
    # The builder is handed training rows only; its statistics must be theirs.
    rng = np.random.default_rng(1)
    data = rng.normal(loc=[10.0, -4.0], scale=[2.0, 0.5], size=(2000, 2)).astype(np.float32)
    model = build_model(["x", "y"], data, HyperParameters(num_layers=1, units=4))
    normalizer = model.get_layer("normalize")
    np.testing.assert_allclose(np.asarray(normalizer.mean).ravel(), data.mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(normalizer.variance).ravel(), data.var(axis=0), rtol=1e-3)


def test_same_seed_builds_identical_weights_other_seed_does_not() -> None:
    data = np.random.default_rng(2).normal(size=(100, 2)).astype(np.float32)
    first = build_model(["x", "y"], data, HyperParameters(seed=7)).get_weights()
    second = build_model(["x", "y"], data, HyperParameters(seed=7)).get_weights()
    other = build_model(["x", "y"], data, HyperParameters(seed=8)).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize(
    ("names", "data", "message"),
    [
        ([], np.zeros((5, 0)), "feature_names is empty"),
        (["a", "a"], np.zeros((5, 2)), r"duplicates: \['a'\]"),
        (["a", "b"], np.zeros((5, 3)), r"shape \(rows, 2\).*got \(5, 3\)"),
        (["a"], np.zeros((0, 1)), "no rows"),
        (["a"], np.array([[1.0], [np.nan]]), "NaN or infinite"),
    ],
)
def test_build_model_refuses_bad_inputs(names: list[str], data: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_model(names, data, HyperParameters())


def test_a_searchs_string_assignments_are_typed_and_the_rest_kept() -> None:
    from kaizen.training.model import DEFAULT_HYPERPARAMETERS

    chosen = DEFAULT_HYPERPARAMETERS.with_assignments(
        {"learning_rate": "0.0123", "num_layers": "3.0", "units": "128", "seed": "7"}
    )
    assert chosen.learning_rate == pytest.approx(0.0123)
    assert chosen.num_layers == 3 and isinstance(chosen.num_layers, int)
    assert chosen.units == 128
    # not searchable: a Katib assignment cannot change the run's seed or epochs
    assert chosen.seed == DEFAULT_HYPERPARAMETERS.seed
    assert chosen.epochs == DEFAULT_HYPERPARAMETERS.epochs
    assert chosen.dropout == DEFAULT_HYPERPARAMETERS.dropout


@pytest.mark.parametrize(
    ("assignments", "field", "message"),
    [
        ({"units": "64.5"}, "units", "not a whole number"),
        ({"learning_rate": "fast"}, "learning_rate", "not a number"),
        ({"dropout": "0.95"}, "dropout", r"dropout must be in \[0, 0.9\]"),
    ],
)
def test_a_bad_assignment_names_its_hyperparameter(
    assignments: dict[str, str], field: str, message: str
) -> None:
    from kaizen.training.model import DEFAULT_HYPERPARAMETERS, HyperParameterError

    with pytest.raises(HyperParameterError, match=message) as raised:
        DEFAULT_HYPERPARAMETERS.with_assignments(assignments)
    assert raised.value.field == field
