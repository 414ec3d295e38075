"""Request validation: every rejection names the instance and the field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kaizen.serving.schema import RequestValidationError, check_tensor, parse_instances

FEATURES = ["amount_zscore", "merchant_risk", "velocity_1h"]
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
VECTOR = {"amount_zscore": 0.5, "merchant_risk": -1, "velocity_1h": 2.0}
ENTITY = {"customer_id": "c-1", "merchant_id": "m-9", "amount": 12.5}


def _reject(body: object, max_batch: int = 256) -> str:
    with pytest.raises(RequestValidationError) as caught:
        parse_instances(body, FEATURES, max_batch=max_batch, now=NOW)
    return str(caught.value)


def test_vectors_and_entities_are_split_in_request_order() -> None:
    parsed = parse_instances(
        {"instances": [VECTOR, {**ENTITY, "event_timestamp": "2026-02-01T10:00:00+01:00"}, ENTITY]},
        FEATURES,
        now=NOW,
    )

    assert parsed.count == 3
    assert parsed.vectors == {0: [0.5, -1.0, 2.0]}
    assert parsed.entities[1]["event_timestamp"] == datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
    assert parsed.entities[2] == {
        "customer_id": "c-1",
        "merchant_id": "m-9",
        "amount": 12.5,
        "event_timestamp": NOW,
    }


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([VECTOR], "request body: expected an object"),
        ({"instances": [VECTOR], "extra": 1}, "unknown field(s) ['extra']"),
        ({"inputs": []}, "unknown field(s) ['inputs']"),
        ({}, "missing field 'instances'"),
        ({"instances": {"a": 1}}, "instances: expected a list of objects, got dict"),
        ({"instances": []}, "instances: empty"),
        ({"instances": [VECTOR, 3]}, "instances[1]: expected an object, got int"),
        ({"instances": [VECTOR, {}]}, "instances[1]: empty object"),
    ],
)
def test_malformed_bodies_are_rejected_with_the_place_named(body: object, expected: str) -> None:
    assert expected in _reject(body)


def test_a_batch_over_the_limit_is_rejected_with_size_and_limit() -> None:
    message = _reject({"instances": [VECTOR] * 5}, max_batch=4)

    assert message == "instances: batch of 5 exceeds the limit of 4"


@pytest.mark.parametrize(
    ("instance", "expected"),
    [
        ({**VECTOR, "colour": 1}, "instances[1]: unknown field(s) ['colour']"),
        (
            {"amount_zscore": 1.0, "velocity_1h": 1.0},
            "instances[1]: missing feature(s) ['merchant_risk']",
        ),
        (
            {**VECTOR, "merchant_risk": "high"},
            "instances[1].merchant_risk: expected a number, got str",
        ),
        (
            {**VECTOR, "merchant_risk": True},
            "instances[1].merchant_risk: expected a number, got bool",
        ),
        (
            {**VECTOR, "merchant_risk": None},
            "instances[1].merchant_risk: expected a number, got NoneType",
        ),
        (
            {**VECTOR, "velocity_1h": float("nan")},
            "instances[1].velocity_1h: expected a finite number",
        ),
        (
            {**VECTOR, "velocity_1h": float("inf")},
            "instances[1].velocity_1h: expected a finite number",
        ),
    ],
)
def test_bad_feature_vectors_name_the_instance_and_feature(
    instance: dict[str, object], expected: str
) -> None:
    assert expected in _reject({"instances": [VECTOR, instance]})


@pytest.mark.parametrize(
    ("instance", "expected"),
    [
        ({"customer_id": "c-1", "amount": 3.0}, "instances[0]: missing field(s) ['merchant_id']"),
        ({**ENTITY, "amount_zscore": 1.0}, "instances[0]: unknown field(s) ['amount_zscore']"),
        ({**ENTITY, "amount": "12"}, "instances[0].amount: expected a number, got str"),
        ({**ENTITY, "amount": float("-inf")}, "instances[0].amount: expected a finite number"),
        ({**ENTITY, "amount": -5}, "instances[0].amount: expected a positive amount, got -5"),
        ({**ENTITY, "amount": 0}, "instances[0].amount: expected a positive amount, got 0"),
        ({**ENTITY, "customer_id": ""}, "instances[0].customer_id: expected a non-empty"),
        ({**ENTITY, "merchant_id": [1]}, "instances[0].merchant_id: expected a non-empty"),
        (
            {**ENTITY, "event_timestamp": "yesterday"},
            "instances[0].event_timestamp: expected an ISO",
        ),
        (
            {**ENTITY, "event_timestamp": 1700000000},
            "instances[0].event_timestamp: expected an ISO",
        ),
        (
            {**ENTITY, "event_timestamp": "2026-02-01T10:00:00"},
            "instances[0].event_timestamp: timestamp must carry a UTC offset",
        ),
    ],
)
def test_bad_entity_requests_name_the_instance_and_field(
    instance: dict[str, object], expected: str
) -> None:
    assert expected in _reject({"instances": [instance]})


def test_a_tensor_of_the_right_name_type_and_shape_passes() -> None:
    check_tensor("features", "FP32", [2, 3], FEATURES, max_batch=4)


@pytest.mark.parametrize(
    ("name", "datatype", "shape", "expected"),
    [
        ("x", "FP32", [1, 3], "inputs: unknown tensor 'x'; expected 'features'"),
        (
            "features",
            "BYTES",
            [1, 3],
            "inputs.features: datatype must be FP32 or FP64, got 'BYTES'",
        ),
        ("features", "FP32", [1, 2], "inputs.features: shape must be [n, 3]"),
        ("features", "FP32", [3], "inputs.features: shape must be [n, 3]"),
        ("features", "FP32", [5, 3], "inputs.features: batch of 5 rows is outside 1..4"),
        ("features", "FP32", [0, 3], "inputs.features: batch of 0 rows is outside 1..4"),
    ],
)
def test_bad_tensors_are_rejected_naming_the_tensor(
    name: str, datatype: str, shape: list[int], expected: str
) -> None:
    with pytest.raises(RequestValidationError) as caught:
        check_tensor(name, datatype, shape, FEATURES, max_batch=4)

    assert expected in str(caught.value)
