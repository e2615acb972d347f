"""/health and /ready from a thread and port of their own, for kubelet probes under overload.

On the main port a probe waits in the same event-loop queue as the requests being shed: at
256 connections every loop iteration serves every ready connection first, so even with
shedding its p99 is a few iterations, hundreds of ms on a busy core. Here a probe only waits
for the GIL (the interpreter hands it over every 5 ms), so it stays fast while the loop is
saturated. The answers still come from the loop, so they stay truthful:
- /health is 200 while a heartbeat scheduled on the event loop keeps beating; a loop stalled
  for longer than `stall_seconds` (blocked, deadlocked) answers 503 and the pod is restarted;
- /ready answers the last readiness check, which the loop repeats every second; a result
  older than `stall_seconds` answers 503.
The main port keeps /health and /ready too.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

HEARTBEAT_SECONDS = 0.5


class ProbeServer:
    def __init__(self, host: str, port: int, stall_seconds: float) -> None:
        self.stall_seconds = stall_seconds
        self.beat = time.monotonic()
        self.ready_at = 0.0
        self.ready: tuple[int, bytes] = (503, b'{"status":"starting"}')
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        # One thread for every connection: a thread started per probe would cost GIL handoffs.
        self._httpd = HTTPServer((host, port), _handler(self))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.5},
            name="probes",
            daemon=True,
        )

    @property
    def port(self) -> int:
        port: int = self._httpd.server_address[1]
        return port

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._heartbeat()
        self._thread.start()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        # shutdown() waits for serve_forever without a bound; never let it hang a stop.
        stopper = threading.Thread(target=self._httpd.shutdown, name="probes-stop", daemon=True)
        stopper.start()
        stopper.join(timeout=5)
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def set_ready(self, status: int, body: dict[str, Any]) -> None:
        """Publish a readiness result (called on the event loop)."""
        self.ready = (status, json.dumps(body).encode())
        self.ready_at = time.monotonic()

    def _heartbeat(self) -> None:
        self.beat = time.monotonic()
        if self._loop is not None:
            self._handle = self._loop.call_later(HEARTBEAT_SECONDS, self._heartbeat)

    def answer(self, path: str) -> tuple[int, bytes]:
        now = time.monotonic()
        if path == "/health":
            if now - self.beat > self.stall_seconds:
                return 503, b'{"status":"stalled"}'
            return 200, b'{"status":"ok"}'
        if path == "/ready":
            if now - self.ready_at > self.stall_seconds:
                return 503, b'{"status":"stale"}'
            return self.ready
        return 404, b'{"error":"not_found"}'


def _handler(probes: ProbeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 2.0  # a client that stalls cannot hold the probe thread for longer

        def do_GET(self) -> None:
            status, body = probes.answer(self.path.split("?", 1)[0])
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Probes every few seconds would flood the logs."""

    return Handler
