"""A small client for the Kaizen model server (behind ``kaizen predict``).

Two request shapes, as the server accepts them:

* **V1** (``POST /v1/models/<name>:predict``): ``{"instances": [...]}`` where an instance is
  an entity request (``customer_id``, ``merchant_id``, ``amount``, optional
  ``event_timestamp``; the server reads the rest from Feast) or a feature vector (an object
  of every feature by name). The answer carries probability, decision and model version.
* **V2** (``POST /v2/models/<name>/infer``): one FP32 tensor ``features`` of shape
  ``[n, number of features]``, values in the model's feature order. The answer carries the
  probabilities and the model version; the decision only if the server sends an
  ``is_fraud`` output.

Only the standard library is used (``urllib``), so importing this module is instant.
Failures are :class:`ClientError` subclasses whose messages are meant for the user.

The same requests with curl::

    curl -s localhost:8080/v1/models/fraud-detector:predict -H 'Content-Type: application/json' \\
      -d '{"instances": [{"customer_id": "C1", "merchant_id": "M1", "amount": 12.5}]}'
    curl -s localhost:8080/v2/models/fraud-detector/infer -H 'Content-Type: application/json' \\
      -d '{"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 3],
           "data": [0.1, -0.2, 0.0]}]}'
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kaizen.platform.names import DEFAULT_MODEL_NAME

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_MODEL = DEFAULT_MODEL_NAME
DEFAULT_TIMEOUT = 10.0


class RequestInputError(ValueError):
    """A value given to the client cannot make a valid request; ``field`` names it.

    ``field`` is one of ``customer_id``, ``merchant_id``, ``amount``, ``timestamp``, ``url``
    and ``model``, so a caller can point at its own option without reading the message.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class ClientError(Exception):
    """A prediction request that did not produce predictions; the message says why."""


class ServerUnavailableError(ClientError):
    """Nothing answers at the URL (connection refused, unknown host, timeout)."""


class ServerRejectedError(ClientError):
    """The server answered with an error status; the message is the server's own.

    Attributes:
        status: The HTTP status (400, 404, 413, 500, 504, ...).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class BadResponseError(ClientError):
    """The server answered 200 with a body that is not a prediction response."""


@dataclass(frozen=True)
class Prediction:
    """One scored instance.

    Attributes:
        fraud_probability: The model's probability of fraud.
        is_fraud: The server's decision at its threshold; None when it sent none (V2).
        model_version: The registry version that scored it.
    """

    fraud_probability: float
    is_fraud: bool | None
    model_version: str


def parse_timestamp(text: str) -> str:
    """Check an ISO 8601 timestamp with a UTC offset; returns it normalized to UTC.

    Args:
        text: Such as ``2026-01-31T12:00:00+00:00`` or ``2026-01-31T12:00:00Z``.

    Returns:
        The timestamp in UTC, ISO 8601.

    Raises:
        RequestInputError: not ISO 8601, or without an offset (the server would guess the zone).
    """
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise RequestInputError(
            "timestamp",
            f"expected an ISO 8601 timestamp such as 2026-01-31T12:00:00+00:00, got {text!r}",
        ) from None
    if parsed.tzinfo is None:
        raise RequestInputError(
            "timestamp", f"timestamp must carry a UTC offset (e.g. +00:00 or Z), got {text!r}"
        )
    return parsed.astimezone(UTC).isoformat()


def entity_instance(
    customer_id: str, merchant_id: str, amount: float, timestamp: str | None = None
) -> dict[str, Any]:
    """A V1 entity request: ids plus the live transaction.

    Args:
        customer_id: The customer entity id.
        merchant_id: The merchant entity id.
        amount: The transaction amount (finite).
        timestamp: ISO 8601 time of the transaction; the server uses "now" when None.

    Returns:
        The instance object.

    Raises:
        RequestInputError: an empty id, a non-finite amount or a timestamp without offset.
    """
    for field, value in (("customer_id", customer_id), ("merchant_id", merchant_id)):
        if not value.strip():
            raise RequestInputError(field, f"{field.replace('_', ' ')} is empty")
    if not math.isfinite(amount):
        raise RequestInputError("amount", f"amount must be a finite number, got {amount}")
    instance: dict[str, Any] = {
        "customer_id": customer_id,
        "merchant_id": merchant_id,
        "amount": amount,
    }
    if timestamp is not None:
        instance["event_timestamp"] = parse_timestamp(timestamp)
    return instance


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def vector_instances(payload: Any) -> list[dict[str, Any]]:
    """V1 feature-vector instances from decoded JSON: one object, or a list of objects.

    Args:
        payload: The decoded ``--features-json`` content.

    Returns:
        The instances.

    Raises:
        ValueError: naming what is wrong with the JSON.
    """
    instances = [payload] if isinstance(payload, Mapping) else payload
    if not isinstance(instances, list) or not instances:
        raise ValueError(
            'expected an object of features by name ({"amount_zscore": 0.1, ...}) or a '
            f"non-empty list of such objects, got {_shape_of(payload)}"
        )
    for index, instance in enumerate(instances):
        if not isinstance(instance, Mapping) or not instance:
            raise ValueError(
                f"item {index}: expected an object of features by name, got {_shape_of(instance)}"
            )
    return [dict(instance) for instance in instances]


def tensor_rows(payload: Any) -> list[list[float]]:
    """V2 rows from decoded JSON: one list of numbers, or a list of such lists.

    The V2 tensor has no feature names, so the values must be in the model's feature order
    (its ``features.json``); an object of features by name is refused rather than guessed.

    Args:
        payload: The decoded ``--features-json`` content.

    Returns:
        The rows, all the same length.

    Raises:
        ValueError: naming what is wrong with the JSON.
    """
    if isinstance(payload, Mapping) or (
        isinstance(payload, list) and payload and isinstance(payload[0], Mapping)
    ):
        raise ValueError(
            "the V2 tensor carries values in the model's feature order, not names: give a "
            "JSON list of numbers (or a list of such lists), or use --protocol v1 for an "
            "object of features by name"
        )
    if not isinstance(payload, list) or not payload:
        raise ValueError(f"expected a list of numbers or a list of rows, got {_shape_of(payload)}")
    rows = payload if isinstance(payload[0], list) else [payload]
    width = len(rows[0])
    for index, row in enumerate(rows):
        if not isinstance(row, list) or not row:
            raise ValueError(f"row {index}: expected a list of numbers, got {_shape_of(row)}")
        if len(row) != width:
            raise ValueError(f"row {index} has {len(row)} values but row 0 has {width}")
        for column, value in enumerate(row):
            if not _is_number(value) or not math.isfinite(value):
                raise ValueError(f"row {index}, value {column}: expected a number, got {value!r}")
    return [[float(value) for value in row] for row in rows]


def _shape_of(value: Any) -> str:
    if isinstance(value, list):
        return "an empty list" if not value else f"a list of {type(value[0]).__name__}"
    return f"{type(value).__name__} {value!r}"[:80]


class PredictClient:
    """Send prediction requests to one server.

    Args:
        url: Server base URL (``http://127.0.0.1:8080``).
        model: Model name in the request paths.
        timeout: Seconds to wait for an answer.
    """

    def __init__(
        self, url: str = DEFAULT_URL, model: str = DEFAULT_MODEL, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RequestInputError(
                "url", f"expected an http(s) URL such as {DEFAULT_URL}, got {url!r}"
            )
        if not model or "/" in model:
            raise RequestInputError("model", f"expected a model name without '/', got {model!r}")
        self.url = url.rstrip("/")
        self.model = model
        self.timeout = timeout

    def predict_v1(self, instances: Sequence[Mapping[str, Any]]) -> tuple[list[Prediction], Any]:
        """Score V1 instances (entity requests or feature vectors).

        Args:
            instances: The instance objects.

        Returns:
            The predictions in request order, and the decoded response body.

        Raises:
            ServerUnavailableError: nothing answers at the URL.
            ServerRejectedError: an error status, with the server's message.
            BadResponseError: a 200 that is not a V1 prediction response.
        """
        body = self._post(f"/v1/models/{self.model}:predict", {"instances": list(instances)})
        try:
            predictions = [
                Prediction(
                    fraud_probability=float(item["fraud_probability"]),
                    is_fraud=bool(item["is_fraud"]),
                    model_version=str(item["model_version"]),
                )
                for item in body["predictions"]
            ]
        except (KeyError, TypeError, ValueError):
            raise BadResponseError(
                f"{self.url} answered without V1 predictions "
                "(fraud_probability, is_fraud, model_version): "
                f"{json.dumps(body)[:300]}"
            ) from None
        return predictions, body

    def predict_v2(self, rows: Sequence[Sequence[float]]) -> tuple[list[Prediction], Any]:
        """Score rows of features (model order) over the V2 Open Inference Protocol.

        Args:
            rows: One list of feature values per instance.

        Returns:
            The predictions in request order, and the decoded response body.

        Raises:
            ServerUnavailableError: nothing answers at the URL.
            ServerRejectedError: an error status, with the server's message.
            BadResponseError: a 200 without a ``fraud_probability`` output.
        """
        width = len(rows[0]) if rows else 0
        request = {
            "inputs": [
                {
                    "name": "features",
                    "datatype": "FP32",
                    "shape": [len(rows), width],
                    "data": [value for row in rows for value in row],
                }
            ]
        }
        body = self._post(f"/v2/models/{self.model}/infer", request)
        try:
            outputs = {output["name"]: output["data"] for output in body["outputs"]}
            probabilities = [float(value) for value in outputs["fraud_probability"]]
            decisions = outputs.get("is_fraud")
            version = str(body.get("model_version") or "?")
            predictions = [
                Prediction(
                    fraud_probability=probability,
                    is_fraud=bool(decisions[index]) if decisions is not None else None,
                    model_version=version,
                )
                for index, probability in enumerate(probabilities)
            ]
        except (KeyError, TypeError, ValueError, IndexError):
            raise BadResponseError(
                f"{self.url} answered without a V2 'fraud_probability' output: "
                f"{json.dumps(body)[:300]}"
            ) from None
        return predictions, body

    def _post(self, path: str, payload: Any) -> Any:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raise ServerRejectedError(error.code, _error_message(error)) from None
        except urllib.error.URLError as error:
            raise ServerUnavailableError(self._unavailable(error.reason)) from None
        except (TimeoutError, ConnectionError) as error:
            raise ServerUnavailableError(self._unavailable(error)) from None
        try:
            return json.loads(raw)
        except ValueError:
            raise BadResponseError(
                f"{self.url}{path} answered with something that is not JSON: "
                f"{raw[:200].decode('utf-8', 'replace')!r}"
            ) from None

    def _unavailable(self, reason: object) -> str:
        if isinstance(reason, TimeoutError):
            return f"no answer from {self.url} within {self.timeout:g} s"
        if isinstance(reason, ConnectionRefusedError):
            return f"no server at {self.url}; start one with `kaizen serve`"
        return f"cannot reach {self.url} ({reason}); start a server with `kaizen serve`"


def _error_message(error: urllib.error.HTTPError) -> str:
    """The server's message from an error response (KServe's ``{"error": ...}``)."""
    try:
        raw = error.read()
    except OSError:
        raw = b""
    text = raw.decode("utf-8", "replace").strip()
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        for key in ("error", "detail", "message"):
            if body.get(key):
                detail = body[key]
                message = detail if isinstance(detail, str) else json.dumps(detail)
                return f"server answered {error.code}: {message}"
    return f"server answered {error.code} {error.reason}" + (f": {text[:300]}" if text else "")
