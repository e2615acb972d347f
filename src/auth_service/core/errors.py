"""One error family: every expected failure is an `AppError` that carries its status and code."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from auth_service.core.logging import request_id_var


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


class ServiceUnavailable(AppError):
    status_code = 503
    code = "service_unavailable"
    message = "A dependency is unavailable. Try again later."


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


async def _http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(StarletteHTTPException, exc)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ").capitalize()
    return error_response(exc.status_code, code, message, headers=exc.headers)


async def _validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(RequestValidationError, exc)
    return error_response(
        422, "validation_error", "The request is not valid.", _validation_details(exc.errors())
    )


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
    raise exc


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(DBAPIError, _database_error_handler)
