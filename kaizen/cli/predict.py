"""``kaizen predict``: score transactions against a running server."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kaizen.cli._app import app, console, fail, positive
from kaizen.platform.names import DEFAULT_MODEL_NAME
from kaizen.platform.redaction import redact_text, redact_uri

# The client names the field a bad value belongs to; this is the option that gave it.
OPTION_OF_FIELD = {
    "customer_id": "--customer-id",
    "merchant_id": "--merchant-id",
    "amount": "--amount",
    "timestamp": "--timestamp",
    "url": "--url",
    "model": "--model",
}


def _read_features_json(source: str) -> Any:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as error:
        raise typer.BadParameter(
            f"cannot read {source}: {error.strerror or error}", param_hint="--features-json"
        ) from None
    try:
        return json.loads(text)
    except ValueError as error:
        raise typer.BadParameter(
            f"{'stdin' if source == '-' else source} is not JSON: {error}",
            param_hint="--features-json",
        ) from None


@app.command()
def predict(
    customer_id: Annotated[str | None, typer.Option(help="Customer id (entity request).")] = None,
    merchant_id: Annotated[str | None, typer.Option(help="Merchant id (entity request).")] = None,
    amount: Annotated[float | None, typer.Option(help="Transaction amount.")] = None,
    timestamp: Annotated[
        str | None,
        typer.Option(help="Transaction time, ISO 8601 with offset (default: now, server side)."),
    ] = None,
    features_json: Annotated[
        str | None,
        typer.Option(
            help="Feature vector(s) from a JSON file ('-' = stdin): V1 an object of features "
            "by name (or a list of them), V2 a list of values in model order (or a list of rows)."
        ),
    ] = None,
    url: Annotated[str, typer.Option(help="Server base URL.")] = "http://127.0.0.1:8080",
    model: Annotated[str, typer.Option(help="Model name.")] = DEFAULT_MODEL_NAME,
    protocol: Annotated[
        str, typer.Option(help="v1 (entity or named features) or v2 (feature tensor).")
    ] = "v1",
    timeout: Annotated[
        float, typer.Option(callback=positive("--timeout"), help="Seconds to wait for an answer.")
    ] = 10.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the server's raw JSON response.")
    ] = False,
) -> None:
    """Score one transaction (or a file of feature vectors) against a running server.

    V1 sends --customer-id/--merchant-id/--amount as an entity request (the server reads the
    customer's and merchant's features from Feast), or the vectors in --features-json.
    V2 sends the --features-json rows as the Open Inference Protocol tensor.
    """
    from kaizen.serving.client import (
        ClientError,
        PredictClient,
        RequestInputError,
        entity_instance,
        tensor_rows,
        vector_instances,
    )

    version = protocol.lower()
    if version not in ("v1", "v2"):
        raise typer.BadParameter(f"expected v1 or v2, got {protocol!r}", param_hint="--protocol")
    entity_options = {
        "--customer-id": customer_id,
        "--merchant-id": merchant_id,
        "--amount": amount,
        "--timestamp": timestamp,
    }
    given = [name for name, value in entity_options.items() if value is not None]
    if features_json is not None and given:
        raise typer.BadParameter(
            f"give either --features-json or the entity options, not both (got {', '.join(given)})",
            param_hint="--features-json",
        )
    if version == "v2" and features_json is None:
        raise typer.BadParameter(
            "--protocol v2 sends the feature tensor, which needs --features-json with the "
            "values in model order; entity requests (ids) go over --protocol v1",
            param_hint="--features-json",
        )
    try:
        client = PredictClient(url, model, timeout=timeout)
    except RequestInputError as error:
        raise typer.BadParameter(
            redact_text(str(error)), param_hint=OPTION_OF_FIELD[error.field]
        ) from None
    try:
        if features_json is not None:
            payload = _read_features_json(features_json)
            try:
                if version == "v2":
                    predictions, body = client.predict_v2(tensor_rows(payload))
                else:
                    predictions, body = client.predict_v1(vector_instances(payload))
            except ValueError as error:
                if isinstance(error, ClientError):
                    raise
                raise typer.BadParameter(str(error), param_hint="--features-json") from None
        else:
            missing = [
                name
                for name in ("--customer-id", "--merchant-id", "--amount")
                if entity_options[name] is None
            ]
            if missing:
                raise typer.BadParameter(
                    f"missing {', '.join(missing)}: an entity request needs --customer-id, "
                    "--merchant-id and --amount (or send vectors with --features-json)",
                    param_hint=missing[0],
                )
            assert customer_id is not None and merchant_id is not None and amount is not None
            try:
                instance = entity_instance(customer_id, merchant_id, amount, timestamp)
            except RequestInputError as error:
                raise typer.BadParameter(
                    str(error), param_hint=OPTION_OF_FIELD[error.field]
                ) from None
            predictions, body = client.predict_v1([instance])
    except ClientError as error:
        fail(error)
    if as_json:
        console.print_json(json.dumps(body))
        return
    table = Table(title=f"{model} at {redact_uri(url)} ({version.upper()})")
    for column in ("#", "fraud probability", "decision", "model version"):
        table.add_column(column)
    for index, prediction in enumerate(predictions):
        decision = {True: "[red]fraud[/red]", False: "[green]legit[/green]", None: "-"}[
            prediction.is_fraud
        ]
        table.add_row(
            str(index),
            f"{prediction.fraud_probability:.4f}",
            decision,
            f"v{prediction.model_version}",
        )
    if any(prediction.is_fraud is None for prediction in predictions):
        table.caption = "V2 returns probabilities only; the decision is in V1 responses"
    console.print(table)
