"""Bounded input, checked before anything parses it (issue 9).

- `Authorization` values over MAX_BEARER_TOKEN_BYTES: 401 `invalid_token`, before any JWT
  parsing (a huge token would otherwise cost base64 and JSON work on the event loop).
- All headers together over MAX_HEADER_BYTES: 431.
- Bodies over MAX_REQUEST_BODY_BYTES: 413, by `Content-Length` before reading, and for chunked
  bodies by counting while reading; at most the limit is ever held in memory.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth_service.core.errors import error_body


def _refuse(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    # Connection: close — the unread rest of an oversized body is not worth draining.
    return JSONResponse(
        error_body(code, message),
        status_code=status,
        headers={"Connection": "close", **(headers or {})},
    )


class InputLimitsMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, max_bearer_bytes: int, max_header_bytes: int
    ) -> None:
        self.app = app
        self.max_body = max_body_bytes
        # "Bearer " / "Basic " prefix included.
        self.max_authorization = max_bearer_bytes + 16
        self.max_headers = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        total = 0
        content_length: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            total += len(name) + len(value)
            if name == b"authorization" and len(value) > self.max_authorization:
                await _refuse(
                    401,
                    "invalid_token",
                    "The credentials in the Authorization header are too long.",
                    {"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )(scope, receive, send)
                return
            if name == b"content-length":
                try:
                    content_length = int(value)
                except ValueError:
                    content_length = -1
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if total > self.max_headers:
            await _refuse(431, "headers_too_large", "The request headers are too large.")(
                scope, receive, send
            )
            return
        if content_length is not None and content_length < 0:
            await _refuse(400, "bad_request", "The Content-Length header is invalid.")(
                scope, receive, send
            )
            return
        if content_length is not None and content_length > self.max_body:
            await self._too_large(scope, receive, send)
            return
        if content_length is None and chunked:
            await self._counted(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _refuse(
            413,
            "payload_too_large",
            f"The request body is larger than {self.max_body} bytes.",
        )(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read a chunked body up to the limit, then hand it on; refuse as soon as it is over."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # disconnected: nothing to answer
                return
            body: bytes = message.get("body", b"")
            size += len(body)
            if size > self.max_body:
                await self._too_large(scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
