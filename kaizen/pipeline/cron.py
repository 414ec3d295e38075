"""Cron expressions as Kubeflow Pipelines reads them, checked before a schedule is sent.

KFP's API server parses a recurring run's cron with ``github.com/robfig/cron`` v1.2.0's
``cron.Parse``: **seconds first**, ``second minute hour day-of-month month day-of-week``, or
a descriptor (``@hourly``, ``@daily``, ``@every 6h``, ...). That parser also takes five
fields, as *second minute hour day-of-month month*: the everyday crontab line ``0 2 * * *``
("02:00 every day") would silently mean "second 0 of minute 2 of every hour". So
:func:`validate_cron` accepts six fields or a descriptor only, and says how to write a
five-field line in KFP's form. Field syntax and ranges follow robfig/cron: ``*`` or ``?``,
numbers, ``a-b`` ranges, ``/step``, ``,`` lists, month names (``jan``) and weekday names
(``sun``, 0 = Sunday). Schedules run in the time zone of KFP's ScheduledWorkflow controller
(UTC unless its pod says otherwise).
"""

from __future__ import annotations

import re

DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# name, lowest, highest, names accepted instead of numbers
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {name: number for number, name in enumerate(_MONTHS, start=1)}),
    ("day of week", 0, 6, {name: number for number, name in enumerate(_DAYS)}),
)
# Go's time.ParseDuration: one or more <decimal><unit>, e.g. 1h30m, 90s, 1.5h.
_GO_DURATION = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h)")
_GO_UNITS_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class CronError(ValueError):
    """A cron expression Kubeflow Pipelines would refuse, or would read otherwise than meant."""


def _number(text: str, field: str, names: dict[str, int], spec: str) -> int:
    lowered = text.lower()
    if lowered in names:
        return names[lowered]
    if not text.isdigit():
        named = f" or a name ({', '.join(names)})" if names else ""
        raise CronError(f"cron {spec!r}: {field} {text!r} is not a number{named}")
    return int(text)


def _check_field(
    text: str, field: str, low: int, high: int, names: dict[str, int], spec: str
) -> None:
    for part in text.split(","):
        if not part:
            raise CronError(f"cron {spec!r}: {field} {text!r} has an empty list item")
        span, slash, step = part.partition("/")
        if slash and (not step.isdigit() or int(step) == 0):
            raise CronError(f"cron {spec!r}: {field} step {step!r} must be a whole number above 0")
        if span in ("*", "?"):
            continue
        bounds = span.split("-")
        if len(bounds) > 2:
            raise CronError(f"cron {spec!r}: {field} {part!r} has more than one '-'")
        start = _number(bounds[0], field, names, spec)
        end = _number(bounds[1], field, names, spec) if len(bounds) == 2 else start
        if start < low or end > high:
            raise CronError(f"cron {spec!r}: {field} {part!r} is outside {low}-{high}")
        if start > end:
            raise CronError(f"cron {spec!r}: {field} range {part!r} runs backwards")


def _check_every(spec: str) -> None:
    duration = spec[len("@every ") :].strip()
    rest, seconds = duration, 0.0
    while rest:
        match = _GO_DURATION.match(rest)
        if match is None:
            raise CronError(
                f"cron {spec!r}: {duration!r} is not a duration such as 30m, 6h or 1h30m"
            )
        token = match.group(0)
        unit = next(u for u in sorted(_GO_UNITS_S, key=len, reverse=True) if token.endswith(u))
        seconds += float(token[: -len(unit)]) * _GO_UNITS_S[unit]
        rest = rest[len(token) :]
    if not duration or seconds < 1:
        raise CronError(f"cron {spec!r}: the interval must be at least 1s")


def validate_cron(spec: str) -> str:
    """Check a cron expression for a KFP recurring run; return it with spaces normalised.

    Args:
        spec: six fields, seconds first (``0 0 2 * * *`` is 02:00:00 every day), or a
            descriptor (``@daily``, ``@every 6h``).

    Returns:
        The expression, fields separated by single spaces.

    Raises:
        CronError: naming the expression, the field and the rule it breaks; for five
            fields, the six-field form the user most likely meant.
    """
    text = " ".join(spec.split())
    if not text:
        raise CronError("cron expression is empty; KFP expects six fields, seconds first")
    if text.startswith("@"):
        if text in DESCRIPTORS:
            return text
        if text.startswith("@every "):
            _check_every(text)
            return text
        raise CronError(
            f"cron {spec!r}: unknown descriptor; use one of {', '.join(DESCRIPTORS)} "
            "or '@every <duration>'"
        )
    fields = text.split(" ")
    if len(fields) == 5:
        raise CronError(
            f"cron {spec!r} has 5 fields; KFP's cron has 6, seconds first, and would read "
            f"these as 'second minute hour day-of-month month'. For the usual crontab "
            f"meaning write {'0 ' + text!r}"
        )
    if len(fields) != 6:
        raise CronError(
            f"cron {spec!r} has {len(fields)} fields; KFP expects 6: "
            "second minute hour day-of-month month day-of-week"
        )
    for value, (field, low, high, names) in zip(fields, _FIELDS, strict=True):
        _check_field(value, field, low, high, names, spec)
    return text
