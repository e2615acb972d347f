"""Pure-ASGI middleware: request id, access log and Prometheus metrics in one pass."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth_service.core.errors import dependency_failure, error_body, unavailable_response
from auth_service.core.logging import client_ip_var, request_id_var, user_agent_var
from auth_service.core.metrics import Metrics

logger = logging.getLogger("auth_service.access")

# A caller-supplied id is echoed only if it is short and plain, so logs cannot be forged.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        incoming = None
        user_agent = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
            elif name == b"user-agent":
                user_agent = value.decode("latin-1")
        request_id = (
            incoming if incoming and _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        )
        token = request_id_var.set(request_id)
        # scope["client"] is already the trusted client IP (ProxyHeadersMiddleware runs first).
        client = scope.get("client")
        ip_token = client_ip_var.set(client[0] if client else None)
        ua_token = user_agent_var.set(user_agent)
        started = time.perf_counter()
        status_code = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status_code, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_code = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                # JSON must never be sniffed into something a browser would run.
                headers.setdefault("X-Content-Type-Options", "nosniff")
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            failure = dependency_failure(exc)
            if failure is not None:
                # An infrastructure fault that escaped the handlers (e.g. the commit after the
                # endpoint returned): the caller should retry, not report a bug.
                logger.warning(
                    "dependency unavailable",
                    extra={"error_type": type(exc).__name__, "path": scope.get("path")},
                )
                if not response_started:
                    status_code = failure.status_code
                    await unavailable_response(failure)(scope, receive, send_wrapper)
                return
            # Answered here rather than by Starlette's ServerErrorMiddleware, which would re-raise
            # and make the server print a traceback. The type is logged; the trace is not.
            logger.error(
                "unhandled error",
                extra={"error_type": type(exc).__name__, "path": scope.get("path")},
            )
            if not response_started:
                status_code = 500
                response = JSONResponse(
                    error_body("internal_error", "An unexpected error occurred."),
                    status_code=500,
                    headers={"X-Request-ID": request_id},
                )
                await response(scope, receive, send)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.observe(method, template, status_code, elapsed)
            if template not in ("/metrics", "/health") and logger.isEnabledFor(logging.INFO):
                logger.info(
                    "request",
                    extra={
                        "method": method,
                        "route": template,
                        "status": status_code,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
            request_id_var.reset(token)
            client_ip_var.reset(ip_token)
            user_agent_var.reset(ua_token)
