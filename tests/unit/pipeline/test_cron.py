"""KFP's cron (robfig/cron v1.2.0, seconds first), checked before a schedule is sent."""

from __future__ import annotations

import pytest

from kaizen.pipeline.cron import CronError, validate_cron


@pytest.mark.parametrize(
    "spec",
    [
        "0 0 2 * * *",
        "0 */15 * * * *",
        "30 0 9-17 * * mon-fri",
        "0 0 0 1,15 * ?",
        "0 0 6 * JAN,jul SUN",
        "0 5/10 * * * *",
        "@daily",
        "@hourly",
        "@every 6h",
        "@every 1h30m",
        "@every 90s",
    ],
)
def test_kfp_cron_forms_are_accepted(spec: str) -> None:
    assert validate_cron(spec) == spec


def test_spaces_are_normalised() -> None:
    assert validate_cron("  0  0 2 * *   * ") == "0 0 2 * * *"


def test_a_crontab_line_of_five_fields_is_refused_with_the_kfp_form() -> None:
    with pytest.raises(CronError) as caught:
        validate_cron("0 2 * * *")
    message = str(caught.value)
    assert "has 5 fields" in message and "seconds first" in message
    assert "write '0 0 2 * * *'" in message


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", "empty"),
        ("0 0 2 * * * *", "has 7 fields; KFP expects 6"),
        ("60 0 2 * * *", "second '60' is outside 0-59"),
        ("0 0 24 * * *", "hour '24' is outside 0-23"),
        ("0 0 0 0 * *", "day of month '0' is outside 1-31"),
        ("0 0 0 * 13 *", "month '13' is outside 1-12"),
        ("0 0 0 * * 7", "day of week '7' is outside 0-6"),
        ("0 0 5-2 * * *", "range '5-2' runs backwards"),
        ("0 */0 * * * *", "step '0' must be a whole number above 0"),
        ("0 0 2 * * funday", "day of week 'funday' is not a number or a name"),
        ("0 0 1-2-3 * * *", "has more than one '-'"),
        ("0 0 1,,2 * * *", "empty list item"),
        ("@sometimes", "unknown descriptor"),
        ("@every soon", "not a duration"),
        ("@every 500ms", "at least 1s"),
    ],
)
def test_invalid_crons_name_the_field_and_rule(spec: str, expected: str) -> None:
    with pytest.raises(CronError, match=expected):
        validate_cron(spec)
