"""The ``kaizen`` command line: thin presentation modules over the library.

Each module registers its commands on the one Typer ``app``; commands load the settings
(the entry point), call one library function and render its result. Errors are rendered by
``kaizen.cli._app.fail`` only.
"""

from kaizen.cli import feedback, fingerprint, monitor, pipeline, predict, registry, serve, tune  # noqa: F401
from kaizen.cli._app import app

__all__ = ["app"]
