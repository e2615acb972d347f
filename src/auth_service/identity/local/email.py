"""The EmailSender port, its SMTP adapter (aiosmtplib, STARTTLS) and the development mailbox."""

from __future__ import annotations

import logging
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
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.sender = sender
        self.starttls = starttls
        self.timeout = timeout_seconds

    async def send(self, message: OutgoingEmail) -> None:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.to
        mail["Subject"] = message.subject
        mail.set_content(message.body)
        try:
            await aiosmtplib.send(
                mail,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                start_tls=self.starttls,
                timeout=self.timeout,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Never fail the request on mail: the answer is the same whether or not it went out.
            logger.warning("email not sent", extra={"error_type": type(exc).__name__})


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
        )
    return DevMailbox(session_factory)
