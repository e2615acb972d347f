"""A minimal SMTP server on loopback (EHLO, STARTTLS, MAIL, RCPT, DATA, QUIT) that keeps what
it receives, and a throwaway certificate authority for its STARTTLS."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class Received:
    sender: str = ""
    recipients: list[str] = field(default_factory=list)
    data: str = ""
    tls: bool = False  # the message came over a connection upgraded by STARTTLS


@dataclass
class SmtpSink:
    port: int = 0
    # With a server context the sink advertises STARTTLS and upgrades when asked.
    tls_context: ssl.SSLContext | None = None
    messages: list[Received] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)  # every verb, in order, all connections
    tls_handshakes: int = 0
    failed_handshakes: int = 0

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def send(line: str) -> None:
            writer.write((line + "\r\n").encode())

        send("220 sink ESMTP")
        secure = False
        current = Received()
        try:
            while line := (await reader.readline()).decode().rstrip("\r\n"):
                verb = line.split(" ", 1)[0].upper()
                self.commands.append(verb)
                if verb in ("EHLO", "HELO"):
                    send("250-sink")
                    if self.tls_context is not None and not secure:
                        send("250-STARTTLS")
                    send("250 8BITMIME")
                elif verb == "STARTTLS":
                    if self.tls_context is None or secure:
                        send("502 not offered")
                    else:
                        send("220 go ahead")
                        await writer.drain()
                        try:
                            await writer.start_tls(self.tls_context)
                        except (ssl.SSLError, OSError):
                            self.failed_handshakes += 1  # the client refused our certificate
                            return
                        self.tls_handshakes += 1
                        secure = True
                        current = Received()  # RFC 3207: forget everything from before
                        continue
                elif verb == "MAIL":
                    current = Received(
                        sender=line.split(":", 1)[1].split(">")[0].strip("<> "), tls=secure
                    )
                    send("250 OK")
                elif verb == "RCPT":
                    current.recipients.append(line.split(":", 1)[1].split(">")[0].strip("<> "))
                    send("250 OK")
                elif verb == "DATA":
                    send("354 go ahead")
                    await writer.drain()
                    lines = []
                    while (chunk := (await reader.readline()).decode()) not in (".\r\n", ""):
                        lines.append(chunk)
                    current.data = "".join(lines)
                    self.messages.append(current)
                    send("250 queued")
                elif verb == "QUIT":
                    send("221 bye")
                    await writer.drain()
                    break
                else:
                    send("250 OK")
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            return  # the client hung up (e.g. after refusing STARTTLS's absence)
        finally:
            writer.close()


@asynccontextmanager
async def smtp_sink(
    tls_context: ssl.SSLContext | None = None, host: str = "127.0.0.1"
) -> AsyncIterator[SmtpSink]:
    sink = SmtpSink(tls_context=tls_context)
    server = await asyncio.start_server(sink._session, host, 0)
    sink.port = server.sockets[0].getsockname()[1]
    async with server:
        yield sink


@dataclass(frozen=True)
class LoopbackCa:
    """A certificate authority made for one test, and a loopback server certificate it signed."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_ca(directory: Path, name: str = "test") -> LoopbackCa:
    """Write `<name>-ca.pem`, `<name>-server.pem` (127.0.0.1 and localhost) and its key."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} smtp test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca = LoopbackCa(
        ca_file=directory / f"{name}-ca.pem",
        cert_file=directory / f"{name}-server.pem",
        key_file=directory / f"{name}-server.key",
    )
    ca.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    ca.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    ca.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca
