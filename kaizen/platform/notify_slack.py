"""Notifications as Slack incoming-webhook messages: ``text`` plus ``blocks``.

The JSON is Slack's incoming-webhook format (https://api.slack.com/messaging/webhooks):
``text`` is the one-line fallback shown in push notifications and by receivers that ignore
blocks (Mattermost and Teams-compatible relays take the same body); ``blocks`` hold a header,
the message, up to ten fields from the notification's details, and a context line. Slack's
limits are kept: header text 150 characters, section text 3000, ten fields of 2000 each.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kaizen.platform.notify import DeliveryRecord, Event, Notification, post_json

_HEADER_LIMIT = 150
_TEXT_LIMIT = 3000
_FIELD_LIMIT = 2000
_MAX_FIELDS = 10
_EMOJI = {
    Event.RUN_SUCCEEDED: ":white_check_mark:",
    Event.RUN_FAILED: ":x:",
    Event.GATE_FAILED: ":no_entry:",
    Event.MODEL_REGISTERED: ":package:",
    Event.CANARY_PROMOTED: ":rocket:",
    Event.CANARY_ROLLED_BACK: ":leftwards_arrow_with_hook:",
    Event.DRIFT_DETECTED: ":chart_with_downwards_trend:",
    Event.RETRAINING_STARTED: ":arrows_counterclockwise:",
}


def slack_message(notification: Notification) -> dict[str, Any]:
    """The incoming-webhook body for ``notification``.

    Args:
        notification: what to report.

    Returns:
        ``{"text": ..., "blocks": [...]}``, JSON-safe.
    """
    event = notification.kind
    subject = f"{event.headline}: {notification.pipeline} {notification.run}"
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _clip(f"{_EMOJI[event]} {subject}", _HEADER_LIMIT),
                "emoji": True,
            },
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _clip(_escape(notification.message), _TEXT_LIMIT)},
        },
    ]
    fields = [
        {"type": "mrkdwn", "text": _clip(f"*{_escape(name)}*\n{_escape(value)}", _FIELD_LIMIT)}
        for name, value in detail_lines(notification.details)[:_MAX_FIELDS]
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": _escape(
                        f"kaizen · {event.value} · {notification.state} · {notification.sent_at}"
                    ),
                }
            ],
        }
    )
    return {"text": _clip(f"{subject}: {notification.message}", _TEXT_LIMIT), "blocks": blocks}


def detail_lines(details: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The details a person reads, as (name, value) pairs; lists of records are left out.

    A number shows three decimals, a mapping of numbers (metrics) one ``name value`` per line.
    """
    lines: list[tuple[str, str]] = []
    for key, value in details.items():
        name = str(key).replace("_", " ")
        if isinstance(value, Mapping):
            shown = "\n".join(
                f"{inner} {_scalar(item)}"
                for inner, item in value.items()
                if item is None or isinstance(item, str | int | float | bool)
            )
            if shown:
                lines.append((name, shown))
        elif value is None or isinstance(value, str | int | float | bool):
            lines.append((name, _scalar(value)))
    return lines


def send_slack(
    notification: Notification,
    url: str,
    *,
    timeout_s: float = 5.0,
    attempts: int = 3,
    backoff_s: float = 0.5,
) -> DeliveryRecord:
    """POST ``notification`` to a Slack-compatible incoming webhook; never raises.

    Args:
        notification: what to report.
        url: the incoming webhook (its path is the token: only scheme, host and port are
            ever shown).
        timeout_s: per-attempt timeout.
        attempts: bounded number of tries on connection errors and 5xx answers.
        backoff_s: first wait between tries, doubled each time.

    Returns:
        The delivery record (channel ``slack``).
    """
    body = json.dumps(slack_message(notification)).encode()
    return post_json(
        notification,
        url,
        body,
        channel="slack",
        timeout_s=timeout_s,
        attempts=attempts,
        backoff_s=backoff_s,
    )


def _scalar(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "none" if value is None else str(value)


def _escape(text: str) -> str:
    """Slack mrkdwn's three control characters, escaped as Slack asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
