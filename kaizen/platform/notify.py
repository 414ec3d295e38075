"""Notifications: always a log line, then every configured channel.

An event (:class:`Event`: a run failed, a gate failed, a model was registered, the canary
promoted or rolled back, drift was detected, retraining started) becomes one
:class:`Notification`, which :func:`deliver` sends to:

- the log (``kaizen.notify``), always;
- the generic JSON webhook (``KAIZEN_WEBHOOK_URL``): the notification as it is;
- a Slack-compatible incoming webhook (``KAIZEN_SLACK_WEBHOOK_URL``): ``text`` plus ``blocks``
  (:mod:`kaizen.platform.notify_slack`);
- email over SMTP (``KAIZEN_SMTP_*``, :mod:`kaizen.platform.notify_email`).

A notification must never turn a good run into a failed one, nor fail a request: delivery
problems are recorded in the returned records (and logged as errors, redacted) instead of
raised.
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
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from kaizen.platform.redaction import redact_text, redact_uri

if TYPE_CHECKING:
    from kaizen.platform.settings import Settings

logger = logging.getLogger("kaizen.notify")


class Event(StrEnum):
    """What a notification is about: the vocabulary every sender and channel shares."""

    RUN_SUCCEEDED = "run_succeeded"
    RUN_FAILED = "run_failed"
    GATE_FAILED = "gate_failed"
    MODEL_REGISTERED = "model_registered"
    CANARY_PROMOTED = "canary_promoted"
    CANARY_ROLLED_BACK = "canary_rolled_back"
    DRIFT_DETECTED = "drift_detected"
    RETRAINING_STARTED = "retraining_started"

    @property
    def headline(self) -> str:
        """A few words a person reads first (email subject, Slack header)."""
        return _TITLES[self]

    @property
    def alarming(self) -> bool:
        """Whether someone should look now (logged as an error, marked in messages)."""
        return self in _ALARMING


_TITLES = {
    Event.RUN_SUCCEEDED: "Run succeeded",
    Event.RUN_FAILED: "Run failed",
    Event.GATE_FAILED: "Gate failed",
    Event.MODEL_REGISTERED: "Model registered",
    Event.CANARY_PROMOTED: "Canary promoted",
    Event.CANARY_ROLLED_BACK: "Canary rolled back",
    Event.DRIFT_DETECTED: "Drift detected",
    Event.RETRAINING_STARTED: "Retraining started",
}
_ALARMING = frozenset(
    {Event.RUN_FAILED, Event.GATE_FAILED, Event.CANARY_ROLLED_BACK, Event.DRIFT_DETECTED}
)


@dataclass(frozen=True)
class Notification:
    """What happened (to a pipeline run, a canary, the live model), as sent to people."""

    pipeline: str
    run: str
    state: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)
    sent_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    event: Event | None = None

    @property
    def succeeded(self) -> bool:
        return self.state.upper() in {"SUCCEEDED", "SUCCESS"}

    @property
    def kind(self) -> Event:
        """The event, or for a notification built without one, what its state says."""
        if self.event is not None:
            return self.event
        return Event.RUN_SUCCEEDED if self.succeeded else Event.RUN_FAILED


@dataclass(frozen=True)
class DeliveryRecord:
    """How one channel fared. ``webhook`` is the redacted URL for webhook channels."""

    notification: Notification
    webhook: str | None
    delivered: bool
    attempts: int
    error: str | None = None
    channel: str = "webhook"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def redact_url(url: str) -> str:
    """The webhook URL without credentials, query or path, which may carry tokens."""
    return redact_uri(url, keep_path=False)


def log_notification(notification: Notification) -> None:
    """The log line every notification gets, whatever channels are configured."""
    logger.log(
        logging.ERROR if notification.kind.alarming else logging.INFO,
        "pipeline %s run %s %s: %s",
        notification.pipeline,
        notification.run,
        notification.state,
        notification.message,
    )


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
    log_notification(notification)
    if not webhook_url:
        return DeliveryRecord(notification, None, delivered=False, attempts=0)
    body = json.dumps(asdict(notification), default=str).encode()
    return post_json(
        notification,
        webhook_url,
        body,
        channel="webhook",
        timeout_s=timeout_s,
        attempts=attempts,
        backoff_s=backoff_s,
    )


def post_json(
    notification: Notification,
    url: str,
    body: bytes,
    *,
    channel: str,
    timeout_s: float = 5.0,
    attempts: int = 3,
    backoff_s: float = 0.5,
) -> DeliveryRecord:
    """POST ``body`` (JSON) to ``url``, retrying connection errors and 5xx; never raises.

    Args:
        notification: what the body says (kept in the record).
        url: an http(s) URL; only its scheme, host and port are ever logged or recorded.
        body: the JSON document.
        channel: the channel's name in the record and the log (``webhook``, ``slack``).
        timeout_s: per-attempt timeout.
        attempts: bounded number of tries on connection errors and 5xx answers.
        backoff_s: first wait between tries, doubled each time.

    Returns:
        The delivery record.
    """
    shown = redact_url(url)
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https"):
        error = f"{channel} URL must be http or https, got scheme {scheme!r}"
        logger.error(error)
        return DeliveryRecord(notification, shown, False, 0, error, channel)
    last_error: str | None = None
    used = 0
    for attempt in range(1, attempts + 1):
        used = attempt
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "kaizen-notify"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                status = response.status
            if 200 <= status < 300:
                return DeliveryRecord(notification, shown, True, attempt, None, channel)
            last_error = f"{channel} answered HTTP {status}"
        except urllib.error.HTTPError as error:
            last_error = f"{channel} answered HTTP {error.code}"
            if error.code < 500:
                break  # a 4xx will not get better by retrying
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            reason = getattr(error, "reason", error)
            last_error = f"{channel} unreachable: {redact_text(str(reason), [url])}"
        if attempt < attempts:
            time.sleep(backoff_s * 2 ** (attempt - 1))
    logger.error("notification not delivered to %s: %s", shown, last_error)
    return DeliveryRecord(notification, shown, False, used, last_error, channel)


def deliver(
    notification: Notification,
    settings: Settings,
    *,
    webhook_url: str | None = None,
    attempts: int = 3,
    backoff_s: float = 0.5,
) -> list[DeliveryRecord]:
    """Log ``notification`` and send it to every channel ``settings`` configures.

    Args:
        notification: what to report.
        settings: the channels (``KAIZEN_WEBHOOK_URL``, ``KAIZEN_SLACK_WEBHOOK_URL``,
            ``KAIZEN_SMTP_*``).
        webhook_url: the generic webhook, overriding ``KAIZEN_WEBHOOK_URL`` (the pipeline's
            ``webhook_url`` parameter); "" or None: the setting's.
        attempts: bounded tries per channel on errors that may pass.
        backoff_s: first wait between tries, doubled each time.

    Returns:
        One record per channel, the generic webhook's first (not delivered, 0 attempts, when
        it is not configured); never raises.
    """
    from kaizen.platform.notify_email import SmtpConfig, send_email
    from kaizen.platform.notify_slack import send_slack

    generic = webhook_url or (str(settings.webhook_url) if settings.webhook_url else None)
    records = [notify(notification, generic, attempts=attempts, backoff_s=backoff_s)]
    slack = settings.slack_webhook_url.get_secret_value()
    if slack:
        records.append(send_slack(notification, slack, attempts=attempts, backoff_s=backoff_s))
    smtp = SmtpConfig.from_settings(settings)
    if smtp is not None:
        records.append(send_email(notification, smtp, attempts=attempts, backoff_s=backoff_s))
    return records
