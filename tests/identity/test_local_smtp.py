"""The SMTP adapter against a loopback server: STARTTLS demanded, the certificate verified."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
import pytest
from sqlalchemy import text

from auth_service.identity.local.email import (
    OutgoingEmail,
    SmtpEmailSender,
    server_verifying_context,
)
from tests.factories import register_user
from tests.identity.test_local_provider import App, app_of, local_app  # noqa: F401
from tests.support.smtp import make_ca, smtp_sink


async def reset_password(client: httpx.AsyncClient, email: str) -> None:
    response = await client.post("/auth/users/password/reset", json={"email": email})
    # The answer never says whether mail went out.
    assert response.status_code == 202, response.text


def mail_warnings(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The app's JSON log lines saying a mail was not sent."""
    lines = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    return [line for line in lines if line["message"] == "email not sent"]


async def test_mail_goes_out_over_starttls_verified_against_smtp_ca_file(
    local_app: App,  # noqa: F811
    tmp_path: Path,
) -> None:
    ca = make_ca(tmp_path)
    async with (
        smtp_sink(ca.server_context()) as sink,
        local_app(
            smtp_host="127.0.0.1",
            smtp_port=sink.port,
            smtp_starttls=True,
            smtp_ca_file=str(ca.ca_file),
            smtp_sender="auth@example.com",
        ) as c,
    ):
        await register_user(c, "smtp@example.com")
        await reset_password(c, "smtp@example.com")
        async with app_of(c).state.session_factory() as session:
            kept = await session.scalar(text("SELECT count(*) FROM auth_service_data.dev_mailbox"))
    assert kept == 0
    [message] = sink.messages
    assert message.tls is True
    assert sink.tls_handshakes == 1
    assert sink.commands.index("STARTTLS") < sink.commands.index("MAIL")
    assert message.sender == "auth@example.com"
    assert message.recipients == ["smtp@example.com"]
    assert "Subject: Reset your password" in message.data
    assert "token_hash=" in message.data


async def test_with_starttls_on_a_server_without_it_gets_no_mail(
    local_app: App,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with (
        smtp_sink() as sink,  # no certificate: STARTTLS not advertised
        local_app(smtp_host="127.0.0.1", smtp_port=sink.port, smtp_starttls=True) as c,
    ):
        await register_user(c, "plain@example.com")
        await reset_password(c, "plain@example.com")
        sender = app_of(c).state.identity_provider.sender
        with pytest.raises(aiosmtplib.SMTPException, match="STARTTLS"):
            await sender.deliver(OutgoingEmail(to="plain@example.com", subject="s", body="b"))
    assert sink.messages == []
    assert "MAIL" not in sink.commands
    assert "STARTTLS" not in sink.commands
    [warning] = mail_warnings(capsys)
    assert warning["level"] == "warning"
    assert warning["error_type"] == "SMTPException"


@pytest.mark.parametrize("trust", ["system store", "another CA"])
async def test_a_certificate_that_does_not_verify_gets_no_mail(
    local_app: App,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    trust: str,
) -> None:
    served = make_ca(tmp_path, "served")
    ca_file = str(make_ca(tmp_path, "other").ca_file) if trust == "another CA" else None
    async with (
        smtp_sink(served.server_context()) as sink,
        local_app(
            smtp_host="127.0.0.1",
            smtp_port=sink.port,
            smtp_starttls=True,
            smtp_ca_file=ca_file,
        ) as c,
    ):
        await register_user(c, "untrusted@example.com")
        await reset_password(c, "untrusted@example.com")
    assert sink.messages == []
    assert "STARTTLS" in sink.commands
    assert "MAIL" not in sink.commands
    [warning] = mail_warnings(capsys)
    assert "SMTP_CA_FILE" in warning["hint"]


async def test_the_served_certificate_must_name_the_host_dialled(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)  # trusted, but it names 127.0.0.1 and localhost only
    async with smtp_sink(ca.server_context(), host="127.0.0.2") as sink:
        sender = SmtpEmailSender(
            host="127.0.0.2",  # a loopback address the certificate does not name
            port=sink.port,
            username=None,
            password=None,
            sender="auth@example.com",
            starttls=True,
            timeout_seconds=5,
            ca_file=str(ca.ca_file),
        )
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            await sender.deliver(OutgoingEmail(to="x@example.com", subject="s", body="b"))
    assert sink.messages == []
    assert "STARTTLS" in sink.commands


def test_an_unreadable_smtp_ca_file_is_refused_at_startup(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    for path in (not_pem, tmp_path / "missing.pem"):
        with pytest.raises(RuntimeError, match="SMTP_CA_FILE"):
            server_verifying_context(str(path))
