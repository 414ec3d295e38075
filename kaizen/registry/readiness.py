"""Whether the registry has a champion to serve, said in words a person can act on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kaizen.platform.redaction import redact_text, redact_uri
from kaizen.registry._backend import sqlite_database
from kaizen.registry.models import CHAMPION, ModelRegistry, RegistryError
from kaizen.registry.tracking import TrackingError

if TYPE_CHECKING:
    from kaizen.platform.settings import Settings

_HINT = "run `make run` (trains and registers one) or `kaizen promote VERSION`"


def champion_problem(settings: Settings) -> str | None:
    """Why a server would have no model to serve, or None when a champion exists.

    A SQLite registry that does not exist yet is reported as such without creating it. The
    tracking URI is shown with its credentials masked, and so is any URI in MLflow's error
    (an unreachable server's error quotes the URI it called).
    """
    from mlflow.exceptions import MlflowException

    from kaizen.training.train import ModelFileError

    database = sqlite_database(settings.tracking_uri)
    if database is not None and not database.exists():
        return f"no champion model: no registry at {database}; {_HINT}"
    where = redact_uri(settings.tracking_uri)
    try:
        champion = ModelRegistry(settings).by_alias(CHAMPION)
    except (RegistryError, TrackingError, ModelFileError, MlflowException) as error:
        return f"cannot read the registry at {where}: {redact_text(str(error))}"
    if champion is None:
        return f"no champion model for {settings.model_name!r} in {where}; {_HINT}"
    return None
