"""The Typer app, its consoles and the one way a command reports an error."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from kaizen.platform.redaction import redact_text
from kaizen.platform.settings import Settings, SettingsError, load_settings

app = typer.Typer(
    help="Kaizen: continuous training and delivery on Kubeflow, from one pipeline definition.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def fail(message: object, code: int = 1) -> NoReturn:
    """Print ``error: <message>`` on stderr and end the command with exit ``code``.

    The message goes through :func:`kaizen.platform.redaction.redact_text` first: a library's
    error may quote a tracking URI or endpoint with its credentials.

    Exit codes: 1 the operation failed, 2 the input (a file, a setting, an option) is bad.
    """
    err_console.print("[red]error:[/red]", escape(redact_text(str(message))))
    raise typer.Exit(code)


def load_settings_or_exit() -> Settings:
    """The settings of this command; an invalid ``KAIZEN_*`` variable ends it with exit 2."""
    try:
        return load_settings()
    except SettingsError as error:
        fail(error, 2)


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs to a dict; values are JSON when they parse, else strings."""
    parsed: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise typer.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="--param")
        name, raw = pair.split("=", 1)
        value: Any = raw
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        parsed[name.strip()] = value
    return parsed


def positive(name: str) -> Any:
    """A Typer callback refusing a value that is not greater than 0, naming option ``name``."""

    def check(value: float | None) -> float | None:
        if value is not None and not value > 0:
            raise typer.BadParameter(f"must be greater than 0, got {value}", param_hint=name)
        return value

    return check
