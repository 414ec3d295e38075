"""``python -m kaizen.cli``: the same as the ``kaizen`` command."""

from kaizen.cli import app

app()
