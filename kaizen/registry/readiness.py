"""Whether the registry has a champion to serve, said in words a person can act on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kaizen.registry._backend import sqlite_database
from kaizen.registry.models import CHAMPION, ModelRegistry, RegistryError
from kaizen.registry.tracking import TrackingError

if TYPE_CHECKING:
    from kaizen.platform.settings import Settings

_HINT = "run `make run` (trains and registers one) or `kaizen promote VERSION`"


def champion_problem(settings: Settings) -> str | None:
    """Why a server would have no model to serve, or None when a champion exists.

    A SQLite registry that does not exist yet is reported as such without creating it.
    """
    from kaizen.training.train import ModelFileError

    database = sqlite_database(settings.tracking_uri)
    if database is not None and not database.exists():
        return f"no champion model: no registry at {database}; {_HINT}"
    try:
        champion = ModelRegistry(settings).by_alias(CHAMPION)
    except (RegistryError, TrackingError, ModelFileError) as error:
        return f"cannot read the registry at {settings.tracking_uri}: {error}"
    if champion is None:
        return f"no champion model for {settings.model_name!r} in {settings.tracking_uri}; {_HINT}"
    return None
