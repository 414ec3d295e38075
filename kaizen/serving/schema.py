"""Validation of prediction requests, independent of the server.

An instance of a V1 request ``{"instances": [...]}`` is one of two shapes:

* a **feature vector**: an object holding exactly the model's features (``features.json``),
  every value a finite number;
* an **entity request**: ``customer_id``, ``merchant_id``, ``amount`` and optionally
  ``event_timestamp`` (ISO 8601 with a UTC offset; the time of the request when absent),
  whose features are read from the Feast online store.

Every problem is reported as a :class:`RequestValidationError` naming the instance index and
the field, so the server can answer 400 with a message a client can act on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kaizen.data.columns import AMOUNT, CUSTOMER_ID, EVENT_TIMESTAMP, MERCHANT_ID

DEFAULT_MAX_BATCH = 256
#: Most labels accepted in one feedback request (the router enforces it, the OpenAPI says it).
MAX_FEEDBACK_ITEMS = 10_000
ENTITY_REQUIRED: tuple[str, ...] = (CUSTOMER_ID, MERCHANT_ID, AMOUNT)
ENTITY_FIELDS: frozenset[str] = frozenset((*ENTITY_REQUIRED, EVENT_TIMESTAMP))


class RequestValidationError(ValueError):
    """A prediction request is malformed; the message names the instance and field."""


@dataclass(frozen=True)
class ParsedInstances:
    """The validated instances of one request, in request order.

    Attributes:
        vectors: ``index -> feature values`` (model order) for feature-vector instances.
        entities: ``index -> entity row`` (``customer_id``, ``merchant_id``, ``amount``,
            timezone-aware ``event_timestamp``) for entity requests.
        count: number of instances.
    """

    vectors: dict[int, list[float]]
    entities: dict[int, dict[str, Any]]
    count: int


def _finite_number(value: Any, where: str) -> float:
    # bool is an int subclass; a JSON true is never a meaningful amount or feature value.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestValidationError(
            f"{where}: expected a number, got {type(value).__name__} {value!r}"
        )
    number = float(value)
    if not math.isfinite(number):
        raise RequestValidationError(f"{where}: expected a finite number, got {value!r}")
    return number


def _entity_id(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise RequestValidationError(
            f"{where}: expected a non-empty string or integer id, got {value!r}"
        )
    return str(value)


def _timestamp(value: Any, where: str, now: datetime) -> datetime:
    if value is None:
        return now
    if not isinstance(value, str):
        raise RequestValidationError(
            f"{where}: expected an ISO 8601 string with a UTC offset, got {value!r}"
        )
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RequestValidationError(
            f"{where}: expected an ISO 8601 timestamp such as "
            f"'2026-01-31T12:00:00+00:00', got {value!r}"
        ) from None
    if parsed.tzinfo is None:
        raise RequestValidationError(
            f"{where}: timestamp must carry a UTC offset (e.g. '+00:00' or 'Z'), got {value!r}"
        )
    return parsed.astimezone(UTC)


def _vector(instance: Mapping[str, Any], index: int, features: Sequence[str]) -> list[float]:
    unknown = sorted(set(instance) - set(features))
    if unknown:
        raise RequestValidationError(
            f"instances[{index}]: unknown field(s) {unknown}; a feature vector holds "
            f"exactly the model's {len(features)} features"
        )
    missing = [name for name in features if name not in instance]
    if missing:
        raise RequestValidationError(
            f"instances[{index}]: missing feature(s) {missing}; a feature vector holds "
            f"every feature of the model"
        )
    return [_finite_number(instance[name], f"instances[{index}].{name}") for name in features]


def _amount(value: Any, where: str) -> float:
    # Ingestion accepts only positive amounts too: the model never saw another, and the
    # on-demand feature log1p(amount) is undefined below -1.
    amount = _finite_number(value, where)
    if amount <= 0:
        raise RequestValidationError(f"{where}: expected a positive amount, got {value!r}")
    return amount


def _entity(instance: Mapping[str, Any], index: int, now: datetime) -> dict[str, Any]:
    unknown = sorted(set(instance) - ENTITY_FIELDS)
    if unknown:
        raise RequestValidationError(
            f"instances[{index}]: unknown field(s) {unknown}; an entity request has "
            f"{list(ENTITY_REQUIRED)} and optionally {EVENT_TIMESTAMP!r}"
        )
    missing = [name for name in ENTITY_REQUIRED if name not in instance]
    if missing:
        raise RequestValidationError(
            f"instances[{index}]: missing field(s) {missing}; an entity request needs "
            f"{list(ENTITY_REQUIRED)}"
        )
    return {
        CUSTOMER_ID: _entity_id(instance[CUSTOMER_ID], f"instances[{index}].{CUSTOMER_ID}"),
        MERCHANT_ID: _entity_id(instance[MERCHANT_ID], f"instances[{index}].{MERCHANT_ID}"),
        AMOUNT: _amount(instance[AMOUNT], f"instances[{index}].{AMOUNT}"),
        EVENT_TIMESTAMP: _timestamp(
            instance.get(EVENT_TIMESTAMP), f"instances[{index}].{EVENT_TIMESTAMP}", now
        ),
    }


def parse_instances(
    body: Any,
    features: Sequence[str],
    *,
    max_batch: int = DEFAULT_MAX_BATCH,
    now: datetime | None = None,
) -> ParsedInstances:
    """Validate a V1 request body and split it into feature vectors and entity requests.

    An instance holding any of ``customer_id``/``merchant_id`` is an entity request;
    any other object is a feature vector.

    Args:
        body: The decoded JSON body, expected ``{"instances": [object, ...]}``.
        features: The model's ordered feature names.
        max_batch: Most instances accepted in one request.
        now: Timestamp given to entity requests without ``event_timestamp`` (UTC now if None).

    Returns:
        The validated instances.

    Raises:
        RequestValidationError: naming the instance index and field at fault.
    """
    if not isinstance(body, Mapping):
        raise RequestValidationError(
            f'request body: expected an object {{"instances": [...]}}, got {type(body).__name__}'
        )
    unknown = sorted(set(body) - {"instances"})
    if unknown:
        raise RequestValidationError(
            f"request body: unknown field(s) {unknown}; expected only 'instances'"
        )
    if "instances" not in body:
        raise RequestValidationError("request body: missing field 'instances'")
    instances = body["instances"]
    if not isinstance(instances, list):
        raise RequestValidationError(
            f"instances: expected a list of objects, got {type(instances).__name__}"
        )
    if not instances:
        raise RequestValidationError("instances: empty; send at least one instance")
    if len(instances) > max_batch:
        raise RequestValidationError(
            f"instances: batch of {len(instances)} exceeds the limit of {max_batch}"
        )
    moment = now or datetime.now(UTC)
    vectors: dict[int, list[float]] = {}
    entities: dict[int, dict[str, Any]] = {}
    for index, instance in enumerate(instances):
        if not isinstance(instance, Mapping):
            raise RequestValidationError(
                f"instances[{index}]: expected an object, got {type(instance).__name__}"
            )
        if not instance:
            raise RequestValidationError(f"instances[{index}]: empty object")
        if CUSTOMER_ID in instance or MERCHANT_ID in instance:
            entities[index] = _entity(instance, index, moment)
        else:
            vectors[index] = _vector(instance, index, features)
    return ParsedInstances(vectors=vectors, entities=entities, count=len(instances))


def check_tensor(
    name: str, datatype: str, shape: Sequence[int], features: Sequence[str], max_batch: int
) -> None:
    """Validate the V2 ``features`` input tensor's name, datatype and shape.

    Args:
        name: Tensor name (must be ``features``).
        datatype: V2 datatype (``FP32`` or ``FP64``).
        shape: Declared shape, expected ``[n, len(features)]`` with ``1 <= n <= max_batch``.
        features: The model's ordered feature names.
        max_batch: Most rows accepted in one request.

    Raises:
        RequestValidationError: naming the tensor and the expectation it misses.
    """
    if name != "features":
        raise RequestValidationError(f"inputs: unknown tensor {name!r}; expected 'features'")
    if datatype not in ("FP32", "FP64"):
        raise RequestValidationError(
            f"inputs.features: datatype must be FP32 or FP64, got {datatype!r}"
        )
    width = len(features)
    if len(shape) != 2 or shape[1] != width:
        raise RequestValidationError(
            f"inputs.features: shape must be [n, {width}] (one column per feature), "
            f"got {list(shape)}"
        )
    if not 1 <= shape[0] <= max_batch:
        raise RequestValidationError(
            f"inputs.features: batch of {shape[0]} rows is outside 1..{max_batch}"
        )
