"""OpenAPI that tells the truth: statuses every operation can return, documented once.

- `responses(400, 401, ...)`: route kwargs for the statuses a route declares itself, with the
  shared descriptions below (other domains may reuse it).
- `document_common_responses(app)`: adds what any operation can answer whatever it declares:
  503 (a dependency down or the service at capacity, with Retry-After) everywhere, and 400
  (a body that cannot be parsed) on every operation that takes a body.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    }
}

DESCRIPTIONS: dict[int, str] = {
    400: "The body could not be parsed (`bad_request`).",
    401: "Missing, invalid, expired or revoked credentials.",
    403: "The caller lacks the required permission.",
    404: "Not found.",
    405: "Method not allowed; `Allow` lists the methods of this path.",
    409: "Conflicts with an existing resource.",
    413: "The body is too large.",
    422: "The request is not valid (`validation_error`).",
    429: "Too many requests (`rate_limited`); `Retry-After` says when to retry.",
    503: (
        "A dependency is unavailable (`service_unavailable`) or the service is at capacity "
        "(`service_busy`); `Retry-After` says when to retry."
    ),
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Route `responses=` for these statuses, with the shared descriptions."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"description": DESCRIPTIONS[status]}
        if status in (429, 503):
            entry["headers"] = dict(_RETRY_AFTER)
        out[status] = entry
    return out


def _add(operation: dict[str, Any], status: int) -> None:
    codes = operation.setdefault("responses", {})
    if str(status) not in codes:
        codes[str(status)] = responses(status)[status]
    elif status in (429, 503):
        codes[str(status)].setdefault("headers", dict(_RETRY_AFTER))


def document_common_responses(app: FastAPI) -> None:
    """Wrap `app.openapi` so every operation documents the statuses any operation can return."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for path_item in schema.get("paths", {}).values():
            for method, operation in path_item.items():
                if method not in {"get", "put", "post", "delete", "patch"}:
                    continue
                _add(operation, 503)
                if "429" in operation.get("responses", {}):
                    _add(operation, 429)
                if "requestBody" in operation:
                    _add(operation, 400)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
