"""Load shedding: a cap on requests in flight per process; above it, 503 at once.

Queueing past capacity only makes every caller slow (at 256 connections the token endpoint's
p99 reached seconds and /health timed out, which gets healthy pods killed). Refusing early
with Retry-After keeps the requests that are admitted fast and lets the caller, or the load
balancer, try another replica. Probes bypass the cap so liveness and readiness stay truthful.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from auth_service.core.errors import RETRY_AFTER
from auth_service.core.logging import request_id_var

_BYPASS = frozenset({"/health", "/ready", "/metrics"})


class LoadSheddingMiddleware:
    def __init__(self, app: ASGIApp, max_in_flight: int, root_path: str = "") -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.root_path = root_path
        self.in_flight = 0
        self.shed = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.max_in_flight <= 0:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if self.root_path and path.startswith(self.root_path):
            path = path[len(self.root_path) :]
        if path in _BYPASS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            self.shed += 1
            await self._refuse(send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": "service_busy",
                "message": "The service is at capacity. Try again shortly.",
                "request_id": request_id_var.get(),
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(RETRY_AFTER["seconds"]).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
