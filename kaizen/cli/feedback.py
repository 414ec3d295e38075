"""``kaizen feedback FILE``: store true labels of logged predictions in bulk."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kaizen.cli._app import app, fail, load_settings_or_exit


@app.command()
def feedback(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV or Parquet with columns prediction_id, label (0/1 or true/false) and "
            "optionally time (ISO 8601, when the label became known; default now).",
            show_default=False,
        ),
    ],
) -> None:
    """Store labels for earlier predictions, joined to the prediction log by prediction_id.

    The file is checked whole first: a bad row (named by its row number) stores nothing.
    When a prediction gets several labels, the one with the latest time counts
    (docs/monitoring.md). The running server's canary only sees labels sent to its
    feedback endpoint.
    """
    from kaizen.monitoring.labels import LabelFileError, read_label_file, store_labels
    from kaizen.monitoring.predictions import read_predictions
    from kaizen.platform.storage import StorageError, open_store

    settings = load_settings_or_exit()
    try:
        labels = read_label_file(file)
    except LabelFileError as error:
        fail(error, 2)
    try:
        store = open_store(settings)
        keys = store_labels(store, settings.model_name, labels, source="file")
        logged = set(read_predictions(store, settings.model_name)["prediction_id"])
    except (StorageError, OSError) as error:
        fail(f"labels not stored: {error}")
    ids = {label.prediction_id for label in labels}
    matched = len(ids & logged)
    typer.echo(
        f"stored {len(labels)} label(s) for {settings.model_name} in {len(keys)} file(s); "
        f"{matched} of {len(ids)} prediction id(s) match the prediction log"
    )
