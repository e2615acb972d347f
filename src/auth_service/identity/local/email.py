"""The EmailSender port, its SMTP adapter (aiosmtplib, STARTTLS) and the development mailbox."""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Protocol

import aiosmtplib
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_service.config import Settings
from auth_service.identity.local.models import DevMailboxMessage

logger = logging.getLogger("auth_service.identity.local.email")


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    to: str
    subject: str
    body: str
    # Machine-readable facts (type, token, token_hash, link) kept by the dev mailbox only.
    meta: dict[str, Any] = field(default_factory=dict)


class EmailSender(Protocol):
    async def send(self, message: OutgoingEmail) -> None: ...


class SmtpEmailSender:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str | None,
        password: str | None,
        sender: str,
        starttls: bool,
        timeout_seconds: float,
        ca_file: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.sender = sender
        self.starttls = starttls
        self.timeout = timeout_seconds
        self.tls_context = server_verifying_context(ca_file)
        if not starttls:
            logger.warning(
                "SMTP_STARTTLS=false: mail (with sign-in links and codes) goes out unencrypted"
            )

    async def deliver(self, message: OutgoingEmail) -> None:
        """Send or raise: with STARTTLS on, a server that does not offer it, or whose
        certificate does not verify, gets nothing (aiosmtplib raises before MAIL FROM)."""
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.to
        mail["Subject"] = message.subject
        mail.set_content(message.body)
        await aiosmtplib.send(
            mail,
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            # Explicit: True demands STARTTLS, never aiosmtplib's opportunistic default (None).
            start_tls=self.starttls,
            validate_certs=True,
            tls_context=self.tls_context,
            timeout=self.timeout,
        )

    async def send(self, message: OutgoingEmail) -> None:
        try:
            await self.deliver(message)
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Never fail the request on mail: the answer is the same whether or not it went out.
            extra = {"error_type": type(exc).__name__}
            if _certificate_refused(exc):
                extra["hint"] = "the SMTP server's certificate is not trusted (SMTP_CA_FILE)"
            logger.warning("email not sent", extra=extra)


def server_verifying_context(ca_file: str | None) -> ssl.SSLContext:
    """Verifies the server's certificate and host name against SMTP_CA_FILE, else the system
    trust store. There is no setting that turns verification off."""
    try:
        return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise RuntimeError(
            f"SMTP_CA_FILE={ca_file!r} is not a readable PEM file of CA certificates"
        ) from exc


def _certificate_refused(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class DevMailbox:
    """Stores messages in the database instead of sending them (no SMTP configured)."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.session_factory = session_factory

    async def send(self, message: OutgoingEmail) -> None:
        async with self.session_factory.begin() as session:
            session.add(
                DevMailboxMessage(
                    to_address=message.to,
                    subject=message.subject,
                    body=message.body,
                    meta=message.meta,
                )
            )


def email_sender(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> EmailSender:
    if settings.smtp_host:
        password = settings.smtp_password
        return SmtpEmailSender(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=password.get_secret_value() if password else None,
            sender=settings.smtp_sender,
            starttls=settings.smtp_starttls,
            timeout_seconds=settings.smtp_timeout_seconds,
            ca_file=settings.smtp_ca_file or None,
        )
    return DevMailbox(session_factory)
