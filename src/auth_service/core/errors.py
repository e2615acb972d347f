"""One error family: every expected failure is an `AppError` that carries its status and code."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, cast

import asyncpg  # type: ignore[import-untyped]  # no stubs published
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from limits.errors import StorageError
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from auth_service.core.logging import request_id_var

logger = logging.getLogger("auth_service.errors")


class AppError(Exception):
    """Base for every error we answer on purpose. Subclasses set `status_code` and `code`."""

    status_code: int = 400
    code: str = "bad_request"
    message: str = "The request could not be processed."
    # An audit event (auth_service.audit.AuditEvent) the handler records in a transaction of
    # its own, since the request's rolls back: denials such as privilege_ceiling (issue 9).
    audit_event: Any = None

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status_code: int | None = None,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or self.message
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.details = details
        self.headers = dict(headers or {})
        super().__init__(self.message)


class NotFound(AppError):
    status_code = 404
    code = "not_found"
    message = "The resource was not found."


class Conflict(AppError):
    status_code = 409
    code = "conflict"
    message = "The resource conflicts with an existing one."


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"
    message = "Authentication is required."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kwargs)


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"
    message = "You do not have permission to perform this action."


class ValidationFailed(AppError):
    status_code = 422
    code = "validation_error"
    message = "The request is not valid."


class RateLimited(AppError):
    status_code = 429
    code = "rate_limited"
    message = "Too many requests. Try again later."


# Seconds a 503 asks the caller to wait; set from RETRY_AFTER_SECONDS at startup.
RETRY_AFTER = {"seconds": 2}


class ServiceUnavailable(AppError):
    status_code = 503
    code = "service_unavailable"
    message = "A dependency is unavailable. Try again later."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.headers.setdefault("Retry-After", str(RETRY_AFTER["seconds"]))


class ServiceBusy(ServiceUnavailable):
    code = "service_busy"
    message = "The service is at capacity. Try again shortly."


# SQLSTATE classes and codes that mean "the database is unreachable or overloaded", not "your
# request was wrong": connection exceptions, insufficient resources, operator intervention
# (shutdown, cannot connect now, statement timeout / cancel).
_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "53", "57")
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)


def dependency_failure(exc: BaseException) -> ServiceUnavailable | None:
    """The 503 an infrastructure fault deserves (database, Redis, a timeout), or None.

    Refused, reset and timed-out connections, pool timeouts and server shutdowns are all the
    same to a caller: try again later. Pool exhaustion is `service_busy`.
    """
    if isinstance(exc, ServiceUnavailable):
        return exc
    if isinstance(exc, AppError):
        return None
    if isinstance(exc, PoolTimeout):
        return ServiceBusy()
    if isinstance(exc, RedisError):
        if "No connection available" in str(exc) or "Too many connections" in str(exc):
            return ServiceBusy()
        return ServiceUnavailable()
    if isinstance(exc, StorageError):
        return dependency_failure(exc.storage_error) or ServiceUnavailable()
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return ServiceUnavailable()
        sqlstate = str(getattr(exc.orig, "sqlstate", "") or "")
        if sqlstate.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES):
            return ServiceUnavailable()
        cause = exc.orig.__cause__ if exc.orig is not None else None
        if isinstance(exc.orig, _CONNECTION_ERRORS) or isinstance(cause, _CONNECTION_ERRORS):
            return ServiceUnavailable()
        return None
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = str(getattr(exc, "sqlstate", "") or "")
        if sqlstate.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES):
            return ServiceUnavailable()
    if isinstance(exc, _CONNECTION_ERRORS):
        return ServiceUnavailable()
    return None


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "message": message, "request_id": request_id_var.get()}
    if details is not None:
        body["details"] = details
    return body


def error_response(
    status_code: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(code, message, details), status_code=status_code, headers=headers
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def _validation_details(errors: Sequence[Any]) -> list[dict[str, Any]]:
    details = []
    for err in errors:
        # Never echo the rejected input: it may be a password.
        details.append(
            {
                "loc": [str(part) for part in err.get("loc", ())],
                "type": err.get("type", "value_error"),
                "message": err.get("msg", "Invalid value"),
            }
        )
    return details


async def _app_error_handler(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(AppError, exc)
    if exc.audit_event is not None:
        from auth_service.audit import record_detached  # audit builds on core, not the reverse

        await record_detached(request.app.state.session_factory, exc.audit_event)
    return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method the API serves at this path, from its OpenAPI paths (compiled once).

    Routes are one per method, so Starlette's own 405 names only the first route's methods.
    """
    table: list[tuple[re.Pattern[str], list[str]]] | None = getattr(
        request.app.state, "allowed_methods_table", None
    )
    if table is None:
        table = []
        for template, item in request.app.openapi().get("paths", {}).items():
            served = {m.upper() for m in item if m in _HTTP_METHODS}
            if "GET" in served:
                served.add("HEAD")
            table.append((compile_path(template)[0], sorted(served | {"OPTIONS"})))
        request.app.state.allowed_methods_table = table
    path = request.scope.get("path", "")
    root = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    for pattern, allowed in table:
        if pattern.match(path):
            return allowed
    return []


_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch"})


async def _http_error_handler(request: Request, exc: Exception) -> Response:
    exc = cast(StarletteHTTPException, exc)
    if exc.status_code == 405:
        allow = allowed_methods(request)
        if request.method == "OPTIONS" and allow:
            # OPTIONS on a path we serve: the methods it allows, not an error.
            return Response(status_code=204, headers={"Allow": ", ".join(allow)})
        headers = {**(exc.headers or {}), "Allow": ", ".join(allow)} if allow else exc.headers
        return error_response(405, "method_not_allowed", "Method not allowed.", headers=headers)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ").capitalize()
    return error_response(exc.status_code, code, message, headers=exc.headers)


async def _validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(RequestValidationError, exc)
    return error_response(
        422, "validation_error", "The request is not valid.", _validation_details(exc.errors())
    )


def unavailable_response(failure: ServiceUnavailable) -> JSONResponse:
    return error_response(
        failure.status_code, failure.code, failure.message, failure.details, failure.headers
    )


async def _dependency_error_handler(request: Request, exc: Exception) -> JSONResponse:
    failure = dependency_failure(exc)
    if failure is None:
        raise exc
    logger.warning(
        "dependency unavailable",
        extra={"error_type": type(exc).__name__, "code": failure.code, "path": request.url.path},
    )
    return unavailable_response(failure)


async def _database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    # SQLSTATE class 22 ("data exception") is always caused by a value we were sent: a NUL byte
    # in text, a number out of range, ... It is the client's error, not ours. Anything else is a
    # real fault and stays a 500.
    sqlstate = str(getattr(getattr(exc, "orig", None), "sqlstate", "") or "")
    if sqlstate.startswith("22"):
        return error_response(
            422,
            "invalid_value",
            "A value is out of range or contains characters that cannot be stored.",
        )
    return await _dependency_error_handler(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(DBAPIError, _database_error_handler)
    for family in (PoolTimeout, RedisError, StorageError, *_CONNECTION_ERRORS):
        app.add_exception_handler(family, _dependency_error_handler)
