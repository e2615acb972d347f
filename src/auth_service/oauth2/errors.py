"""RFC 6749 §5.2 errors. Not our general error body: OAuth clients parse exactly this shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

BASIC_CHALLENGE = 'Basic realm="auth_service"'


class OAuthError(Exception):
    def __init__(
        self,
        error: str,
        description: str,
        *,
        status_code: int = 400,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.error = error
        self.description = description
        self.status_code = status_code
        self.headers = dict(headers or {})
        # An audit event to record with the answer (auth_service.audit.AuditEvent), if any.
        self.audit_event: Any = None
        super().__init__(f"{error}: {description}")


def invalid_request(description: str) -> OAuthError:
    return OAuthError("invalid_request", description)


def invalid_client() -> OAuthError:
    # One answer for unknown client, wrong secret and inactive client: nothing to enumerate.
    # 401 always carries a challenge (RFC 7235), for Basic and form credentials alike.
    return OAuthError(
        "invalid_client",
        "Client authentication failed.",
        status_code=401,
        headers={"WWW-Authenticate": BASIC_CHALLENGE},
    )
