"""A minimal SMTP server on loopback (EHLO, MAIL, RCPT, DATA, QUIT) that keeps what it receives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class Received:
    sender: str = ""
    recipients: list[str] = field(default_factory=list)
    data: str = ""


@dataclass
class SmtpSink:
    port: int = 0
    messages: list[Received] = field(default_factory=list)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def send(line: str) -> None:
            writer.write((line + "\r\n").encode())

        send("220 sink ESMTP")
        current = Received()
        while line := (await reader.readline()).decode().rstrip("\r\n"):
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                send("250-sink")
                send("250 8BITMIME")
            elif verb == "MAIL":
                current = Received(sender=line.split(":", 1)[1].split(">")[0].strip("<> "))
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
        writer.close()


@asynccontextmanager
async def smtp_sink() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()
    server = await asyncio.start_server(sink._session, "127.0.0.1", 0)
    sink.port = server.sockets[0].getsockname()[1]
    async with server:
        yield sink
