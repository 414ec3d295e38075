"""A real SMTP server for tests: aiosmtpd on 127.0.0.1 that keeps every message it accepts.

``security`` is what it speaks: ``none`` (plain SMTP), ``starttls`` (STARTTLS required before
mail or login) or ``ssl`` (TLS from the first byte), with a self-signed certificate for
127.0.0.1 whose file clients trust (:attr:`SmtpServer.ca_file`). With ``credentials`` it
requires AUTH PLAIN/LOGIN and records who logged in.
"""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import socket
import ssl
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session


class _Keeper:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        self.messages.append(parsed)
        self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


class SmtpServer:
    """An SMTP server on 127.0.0.1; use it as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        directory: Path,
        *,
        security: Literal["none", "starttls", "ssl"] = "none",
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.keeper = _Keeper()
        self.logins: list[str] = []
        self.ca_file = directory / "smtp-cert.pem"
        self.port = _free_port()
        kwargs: dict[str, Any] = {}
        if security != "none":
            context = _self_signed_context(directory)
            if security == "starttls":
                kwargs.update(tls_context=context, require_starttls=True)
            else:
                kwargs.update(ssl_context=context, server_hostname="127.0.0.1")
        if credentials is not None:
            kwargs.update(
                authenticator=self._authenticator(credentials),
                auth_required=True,
                # aiosmtpd offers AUTH on implicit TLS only when it is not asked to require
                # TLS (it tracks STARTTLS alone); the ssl transport is encrypted either way.
                auth_require_tls=security == "starttls",
            )
        self.controller = Controller(
            self.keeper, hostname="127.0.0.1", port=self.port, ready_timeout=30.0, **kwargs
        )
        self.controller.start()

    @property
    def messages(self) -> list[EmailMessage]:
        return self.keeper.messages

    def _authenticator(self, credentials: tuple[str, str]) -> Any:
        logins = self.logins

        def authenticate(
            server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
        ) -> AuthResult:
            if (
                isinstance(data, LoginPassword)
                and (
                    data.login.decode(),
                    data.password.decode(),
                )
                == credentials
            ):
                logins.append(data.login.decode())
                return AuthResult(success=True)
            return AuthResult(success=False, handled=False)

        return authenticate

    def close(self) -> None:
        self.controller.stop()

    def __enter__(self) -> SmtpServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _self_signed_context(directory: Path) -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for 127.0.0.1 (also the CA file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kaizen test smtp")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "smtp-cert.pem"
    key_file = directory / "smtp-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context
