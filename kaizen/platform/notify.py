"""Run notifications: always a log line, and a JSON POST to a webhook when one is configured.

A notification must never turn a good run into a failed one, so delivery problems are
recorded in the returned record (and logged as errors) instead of raised.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from kaizen.platform.redaction import redact_uri

logger = logging.getLogger("kaizen.notify")


@dataclass(frozen=True)
class Notification:
    """What happened to one pipeline run, as sent to people and webhooks."""

    pipeline: str
    run: str
    state: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)
    sent_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @property
    def succeeded(self) -> bool:
        return self.state.upper() in {"SUCCEEDED", "SUCCESS"}


@dataclass(frozen=True)
class DeliveryRecord:
    notification: Notification
    webhook: str | None
    delivered: bool
    attempts: int
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def redact_url(url: str) -> str:
    """The webhook URL without credentials, query or path, which may carry tokens."""
    return redact_uri(url, keep_path=False)


def notify(
    notification: Notification,
    webhook_url: str | None = None,
    *,
    timeout_s: float = 5.0,
    attempts: int = 3,
    backoff_s: float = 0.5,
) -> DeliveryRecord:
    """Log ``notification`` and POST it as JSON to ``webhook_url`` if given.

    Args:
        notification: what to report.
        webhook_url: an http(s) URL, or None/"" for log only.
        timeout_s: per-attempt timeout.
        attempts: bounded number of tries on connection errors and 5xx answers.
        backoff_s: first wait between tries, doubled each time.

    Returns:
        The delivery record: delivered or not, attempts used, and the last error.
    """
    level = logging.INFO if notification.succeeded else logging.ERROR
    logger.log(
        level,
        "pipeline %s run %s %s: %s",
        notification.pipeline,
        notification.run,
        notification.state,
        notification.message,
    )
    if not webhook_url:
        return DeliveryRecord(notification, None, delivered=False, attempts=0)
    scheme = urlsplit(webhook_url).scheme
    if scheme not in ("http", "https"):
        error = f"webhook URL must be http or https, got scheme {scheme!r}"
        logger.error(error)
        return DeliveryRecord(notification, redact_url(webhook_url), False, 0, error)

    body = json.dumps(asdict(notification), default=str).encode()
    last_error: str | None = None
    used = 0
    for attempt in range(1, attempts + 1):
        used = attempt
        request = urllib.request.Request(
            webhook_url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "kaizen-notify"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                status = response.status
            if 200 <= status < 300:
                return DeliveryRecord(notification, redact_url(webhook_url), True, attempt)
            last_error = f"webhook answered HTTP {status}"
        except urllib.error.HTTPError as error:
            last_error = f"webhook answered HTTP {error.code}"
            if error.code < 500:
                break  # a 4xx will not get better by retrying
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            reason = getattr(error, "reason", error)
            last_error = f"webhook unreachable: {reason}"
        if attempt < attempts:
            time.sleep(backoff_s * 2 ** (attempt - 1))
    logger.error("notification not delivered to %s: %s", redact_url(webhook_url), last_error)
    return DeliveryRecord(notification, redact_url(webhook_url), False, used, last_error)
