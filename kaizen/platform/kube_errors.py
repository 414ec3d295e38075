"""What a Kubernetes API error says, in the words an error message should quote.

Shared by the clients that talk to an API server (the Katib launcher, the InferenceService
rollout): the ``kubernetes`` client's ``ApiException`` carries the server's ``Status`` object as
its body, and urllib3's connection errors bury the errno text behind the connection's repr.
"""

from __future__ import annotations

import json
from typing import Any


def status_fields(err: Any) -> tuple[int, str, str]:
    """``(code, reason, message)`` of the Kubernetes Status object in an error answer.

    Args:
        err: a ``kubernetes.client.ApiException`` (anything with ``status``, ``reason`` and
            ``body``).
    """
    code = int(err.status or 0)
    reason = str(err.reason or "")
    message = ""
    try:
        status = json.loads(err.body) if err.body else {}
    except (TypeError, ValueError):
        status = {}
    if isinstance(status, dict):
        code = int(status.get("code") or code)
        reason = str(status.get("reason") or reason)
        message = str(status.get("message") or "")
    if not message and isinstance(err.body, str | bytes):
        # A proxy in front of the API server may answer with plain text; keep it short.
        text = err.body.decode(errors="replace") if isinstance(err.body, bytes) else err.body
        message = " ".join(text.split())[:300]
    return code, reason, message


def transport_cause(err: Exception) -> str:
    """The reason a request never got an answer (``ConnectionRefusedError: [Errno 111] ...``)."""
    cause = getattr(err, "reason", None) or err
    text = str(cause)
    # urllib3 prefixes the connection object's repr; the errno text after it is what matters.
    if "Failed to establish a new connection:" in text:
        text = text.split("Failed to establish a new connection:", 1)[1].strip()
    return f"{type(cause).__name__}: {text}"
