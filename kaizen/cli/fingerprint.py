"""``kaizen fingerprint``: the identity of a run's data, for deduplicated retraining."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kaizen.cli._app import app, fail, parse_params


@app.command()
def fingerprint(
    data: Annotated[
        Path | None,
        typer.Argument(
            help="A data file (CSV or Parquet) as it landed; without it, the synthetic data "
            "that the -p parameters generate.",
            show_default=False,
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="A pipeline parameter, NAME=VALUE (repeatable); only the generator's "
            "(seed, rows, customers, merchants, days, fraud_rate, drift) change the result.",
        ),
    ] = None,
) -> None:
    """Print the fingerprint (64 hex digits) of a run's data: the same data, the same value.

    For a file it is the sha256 of its bytes, what `sha256sum FILE` prints. The retrain
    workflow starts at most one run per fingerprint (docs/ci.md).
    """
    from kaizen.pipeline.fingerprint import (
        FingerprintError,
        file_fingerprint,
        synthetic_fingerprint,
    )

    try:
        if data is not None:
            value = file_fingerprint(data)
        else:
            value = synthetic_fingerprint(parse_params(param or []))
    except FingerprintError as error:
        fail(error, 2)
    typer.echo(value)
