"""Credentials kept out of what Kaizen prints and logs: URIs, connection strings, messages.

A tracking URI, an S3 endpoint, a Redis connection, a webhook URL or the Kubernetes API
address may carry a credential (``http://user:password@host``, ``https://host/?token=...``,
``host:6379,password=...``), and a library's error message may repeat it verbatim (MLflow's
``API request to http://user:password@host/... failed``). Whatever Kaizen shows about such a
value goes through this module:

- :func:`redact_uri` for one value known to be a URI, endpoint or connection string;
- :func:`redact_text` for a message that may contain some (every URI found in it, every
  ``password=``-style field, every bearer token, and any secret values the caller knows).

What is masked, with ``***``:

- the whole user-info part (``user:password@`` and a lone ``token@``): a user name is often a
  token too (``https://<token>@host``), so only the fact that credentials are there is shown;
- every query value (``?token=***&sslmode=***``) and any fragment: the keys stay, so the reader
  still sees what was passed, not its value;
- values of ``key=value`` fields whose key names a credential (``password``, ``secret``,
  ``token``, ``access_key``, ...), as in Redis and database connection strings;
- ``Bearer``/``Basic`` authorization values.

Scheme, host, port and path stay, so a message still says *where* ("cannot reach
``http://***@mlflow.kaizen:5000``"). Webhook URLs are the exception: their path is often the
secret itself (``https://hooks.slack.com/services/T0/B0/xyz``), so :func:`redact_uri` with
``keep_path=False`` shows only scheme, host and port.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"

#: A URI with a scheme inside free text (ends at whitespace, quotes or brackets around it).
_URI_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`\[\]{}()|\\^]+")
#: ``user:password@host`` without a scheme (an S3 endpoint or Redis address typed that way).
_SCHEMELESS_USERINFO = re.compile(r"(?<![\w.%+\-:/@])[\w.%+\-~!$&*]+:[^\s@/'\"]+@(?=[\w.\-\[])")
#: ``key=value`` where the key names a credential (connection strings, env-style lines).
_SECRET_FIELD = re.compile(
    r"(?i)\b([\w.\-]*(?:password|passwd|pwd|secret|token|access_key|accesskey|api_key|apikey"
    r"|credential|private_key)[\w.\-]*)(\s*=\s*)(?!\*\*\*)([^\s,;&'\"]+)"
)
#: An HTTP authorization value: ``Bearer <token>``, ``Basic <base64>``. The value must look
#: like a credential (8+ characters, a digit or punctuation among them), so that prose such
#: as "a basic validation" is left alone.
_AUTHORIZATION = re.compile(
    r"(?i)\b(bearer|basic)\s+(?!\*\*\*)(?=[A-Za-z0-9._~+/=\-]*[0-9._~+/=\-])"
    r"[A-Za-z0-9._~+/=\-]{8,}"
)
#: Shorter "secrets" would mask ordinary words (a one-letter password must not blank every "a").
_MIN_SECRET_LENGTH = 4


def redact_uri(uri: str, *, keep_path: bool = True) -> str:
    """``uri`` with its credentials replaced by ``***``; where it points stays readable.

    Args:
        uri: a URI (``http://alice:pw@host:5000/x?token=t``), a scheme-less endpoint
            (``alice:pw@minio:9000``) or a connection string (``redis:6379,password=pw``).
        keep_path: False for URLs whose path may itself be the secret (webhooks): the
            result is then ``scheme://host:port/…`` (or ``…/`` when there is no path).

    Returns:
        The redacted text; a value without credentials comes back unchanged (with
        ``keep_path=False``, without its path).
    """
    scheme, separator, rest = uri.partition("://")
    if not separator:
        scheme, rest = "", uri
    authority_end = min(
        [index for index in (rest.find("/"), rest.find("?"), rest.find("#")) if index >= 0]
        or [len(rest)]
    )
    authority, tail = rest[:authority_end], rest[authority_end:]
    userinfo, at, host_port = authority.rpartition("@")
    if not at and "@" in tail and not _port_is_numeric(authority):
        # A password holding '/', '?' or '#' unencoded: "user:pa/ss@host" ends the
        # authority early; the credential runs up to the last '@'.
        last_at = tail.rfind("@")
        host_part = tail[last_at + 1 :]
        host_end = min(
            [i for i in (host_part.find("/"), host_part.find("?"), host_part.find("#")) if i >= 0]
            or [len(host_part)]
        )
        userinfo, at = authority + tail[:last_at], "@"
        host_port, tail = host_part[:host_end], host_part[host_end:]
    prefix = f"{scheme}://" if separator else ""
    if not keep_path:
        path = tail.split("#", 1)[0].split("?", 1)[0]
        return f"{prefix}{host_port}/{'…' if path not in ('', '/') else ''}"
    shown_authority = f"{MASK}@{host_port}" if at and userinfo else host_port
    return _mask_secret_fields(prefix + shown_authority + _redact_tail(tail))


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every credential it may hold replaced by ``***``.

    Known secret values go first (longest first, so a token inside a longer secret cannot
    leave a tail), then every URI in the text is passed through :func:`redact_uri`, then
    scheme-less ``user:password@host`` forms, credential fields (``password=...``) and
    authorization values are masked.

    Args:
        text: a message, a log line, an exception's text.
        secrets: values known to be secret (a password, a token, an access key); values
            shorter than 4 characters are ignored, they would mask ordinary words.

    Returns:
        The redacted text.
    """
    known = {secret for secret in secrets if len(secret) >= _MIN_SECRET_LENGTH}
    for secret in sorted(known, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _URI_IN_TEXT.sub(lambda match: redact_uri(match.group(0)), text)
    text = _SCHEMELESS_USERINFO.sub(f"{MASK}@", text)
    text = _mask_secret_fields(text)
    return _AUTHORIZATION.sub(lambda match: f"{match.group(1)} {MASK}", text)


def _mask_secret_fields(text: str) -> str:
    return _SECRET_FIELD.sub(lambda match: f"{match.group(1)}{match.group(2)}{MASK}", text)


def _port_is_numeric(authority: str) -> bool:
    """Whether ``authority`` is ``host`` or ``host:<digits>`` (IPv6 literals included)."""
    if authority.endswith("]") or ":" not in authority:
        return True
    return authority.rpartition(":")[2].isdigit()


def _redact_tail(tail: str) -> str:
    """Path kept; every query value and the fragment masked."""
    path, hash_mark, fragment = tail.partition("#")
    path, question, query = path.partition("?")
    shown = path
    if question:
        items = []
        for item in query.split("&"):
            key, equals, value = item.partition("=")
            if equals:
                items.append(f"{key}={MASK}" if value else item)
            else:
                items.append(MASK if key else item)
        shown += "?" + "&".join(items)
    if hash_mark:
        shown += "#" + (MASK if fragment else "")
    return shown
