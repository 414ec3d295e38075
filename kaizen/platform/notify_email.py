"""Notifications as email over SMTP (the standard library's ``smtplib``).

One plain-text message per notification: the subject names the event and what it is about
(``[kaizen] Gate failed: kaizen-training 20261203-092728-a59a7c``), the body holds the message,
the details a person reads (best metrics, versions, reasons) and when it was sent.

``KAIZEN_SMTP_SECURITY`` chooses the transport: ``starttls`` (port 587 by default, the
connection is upgraded before anything else is said), ``ssl`` (465, TLS from the start) or
``none`` (25; refused by the settings together with a password unless the server is on
loopback). Certificates are verified against the system's CAs or ``KAIZEN_SMTP_CA_FILE``.
The password (``KAIZEN_SMTP_PASSWORD`` or ``_FILE``) never appears in a record or a log line.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from kaizen.platform.notify import DeliveryRecord, Notification
from kaizen.platform.notify_slack import detail_lines
from kaizen.platform.redaction import redact_text

if TYPE_CHECKING:
    from kaizen.platform.settings import Settings

logger = logging.getLogger("kaizen.notify")

DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to send email; built from the settings by :meth:`from_settings`."""

    host: str
    port: int
    security: Literal["starttls", "ssl", "none"]
    sender: str
    recipients: tuple[str, ...]
    user: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig | None:
        """The email channel ``settings`` configures, or None when ``KAIZEN_SMTP_HOST`` is unset.

        The settings have checked it is whole (sender, recipients, user with password).
        """
        if settings.smtp_host is None or settings.smtp_from is None:
            return None
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port or DEFAULT_PORTS[settings.smtp_security],
            security=settings.smtp_security,
            sender=settings.smtp_from,
            recipients=settings.smtp_recipients,
            user=settings.smtp_user,
            password=settings.smtp_password.get_secret_value() or None,
            ca_file=settings.smtp_ca_file,
        )

    @property
    def where(self) -> str:
        """``smtp://host:port (security)``, what a log line may show."""
        return f"smtp://{self.host}:{self.port} ({self.security})"


def email_message(
    notification: Notification, sender: str, recipients: tuple[str, ...]
) -> EmailMessage:
    """The email for ``notification``.

    Args:
        notification: what to report.
        sender: the From address.
        recipients: the To addresses.

    Returns:
        A plain-text message with subject, date and message id set.
    """
    event = notification.kind
    message = EmailMessage()
    message["Subject"] = f"[kaizen] {event.headline}: {notification.pipeline} {notification.run}"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain="kaizen")
    lines = [notification.message, ""]
    for name, value in detail_lines(notification.details):
        if "\n" in value:
            lines.append(f"{name}:")
            lines.extend(f"  {line}" for line in value.splitlines())
        else:
            lines.append(f"{name}: {value}")
    lines += [
        "",
        f"event: {event.value}",
        f"state: {notification.state}",
        f"sent at: {notification.sent_at}",
    ]
    message.set_content("\n".join(lines) + "\n")
    return message


def send_email(
    notification: Notification,
    config: SmtpConfig,
    *,
    attempts: int = 3,
    backoff_s: float = 0.5,
) -> DeliveryRecord:
    """Email ``notification`` to ``config.recipients``; never raises.

    Connection problems and the server's temporary (4xx) answers are retried; a refused
    login or refused recipients are not.

    Args:
        notification: what to report.
        config: the SMTP server, transport, login and addresses.
        attempts: bounded number of tries.
        backoff_s: first wait between tries, doubled each time.

    Returns:
        The delivery record (channel ``email``, ``webhook`` None).
    """
    message = email_message(notification, config.sender, config.recipients)
    secrets = [config.password] if config.password else []
    last_error: str | None = None
    used = 0
    for attempt in range(1, attempts + 1):
        used = attempt
        try:
            _send(message, config)
            return DeliveryRecord(notification, None, True, attempt, None, "email")
        except smtplib.SMTPAuthenticationError as error:
            last_error = f"email: login refused by the server: {error.smtp_code}"
            break
        except smtplib.SMTPNotSupportedError as error:
            last_error = f"email: the server does not support it: {error}"
            break
        except smtplib.SMTPRecipientsRefused as error:
            last_error = f"email: recipients refused: {sorted(error.recipients)}"
            break
        except smtplib.SMTPResponseException as error:
            last_error = f"email: server answered {error.smtp_code}: {_text(error.smtp_error)}"
            if error.smtp_code < 400 or error.smtp_code >= 500:
                break
        except (smtplib.SMTPException, ssl.SSLError, OSError) as error:
            last_error = f"email: cannot reach {config.where}: {error}"
        if attempt < attempts:
            time.sleep(backoff_s * 2 ** (attempt - 1))
    shown = redact_text(last_error or "", secrets)
    logger.error("notification not emailed via %s: %s", config.where, shown)
    return DeliveryRecord(notification, None, False, used, shown, "email")


def _send(message: EmailMessage, config: SmtpConfig) -> None:
    context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
    client: smtplib.SMTP
    if config.security == "ssl":
        client = smtplib.SMTP_SSL(
            config.host, config.port, timeout=config.timeout_s, context=context
        )
    else:
        client = smtplib.SMTP(config.host, config.port, timeout=config.timeout_s)
    with client:
        client.ehlo()
        if config.security == "starttls":
            client.starttls(context=context)
            client.ehlo()
        if config.user and config.password:
            client.login(config.user, config.password)
        client.send_message(message)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
