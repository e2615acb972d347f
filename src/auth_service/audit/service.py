"""Recording audit events: one row in the caller's transaction, and one JSON log line."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_service.audit.repository import AuditRepository
from auth_service.core.actor import Actor
from auth_service.core.logging import client_ip_var, request_id_var, user_agent_var

logger = logging.getLogger("auth_service.audit")


class AuditAction(StrEnum):
    """Every action the audit log records (docs/audit.md lists them with their targets)."""

    # admin changes
    CLIENT_CREATE = "client.create"
    CLIENT_UPDATE = "client.update"
    CLIENT_DELETE = "client.delete"
    CLIENT_SECRET_ROTATE = "client.secret_rotate"  # noqa: S105 - an action name
    CLIENT_ROLE_ASSIGN = "client.role_assign"
    CLIENT_ROLE_REMOVE = "client.role_remove"
    ROLE_CREATE = "role.create"
    ROLE_UPDATE = "role.update"
    ROLE_DELETE = "role.delete"
    ROLE_PERMISSION_GRANT = "role.permission_grant"
    ROLE_PERMISSION_REVOKE = "role.permission_revoke"
    PERMISSION_CREATE = "permission.create"
    PERMISSION_UPDATE = "permission.update"
    PERMISSION_DELETE = "permission.delete"
    USER_ROLE_ASSIGN = "user.role_assign"
    USER_ROLE_REMOVE = "user.role_remove"
    USER_DELETE = "user.delete"
    USER_BAN = "user.ban"
    USER_UNBAN = "user.unban"
    # operations
    KEY_ROTATE = "key.rotate"
    KEY_REMOVE = "key.remove"
    RBAC_BOOTSTRAP = "rbac.bootstrap"
    AUDIT_PRUNE = "audit.prune"
    # human sign-in
    USER_REGISTER = "user.register"
    USER_LOGIN = "user.login"
    USER_LOGOUT = "user.logout"
    USER_PASSWORD_RESET = "user.password_reset"  # noqa: S105 - an action name
    USER_PASSWORD_UPDATE = "user.password_update"  # noqa: S105 - an action name
    USER_MFA_ENROLL = "user.mfa_enroll"
    USER_MFA_VERIFY = "user.mfa_verify"
    USER_MFA_UNENROLL = "user.mfa_unenroll"
    # machine tokens
    TOKEN_REVOKE = "token.revoke"  # noqa: S105 - an action name
    CLIENT_AUTH_FAILED = "client.auth_failed"
    # denials
    PRIVILEGE_CEILING = "access.privilege_ceiling"
    MFA_REQUIRED = "access.mfa_required"
    RATE_LIMITED = "access.rate_limited"


class Outcome(StrEnum):
    SUCCESS = "success"
    DENIED = "denied"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Target:
    kind: str
    id: str | None = None


# Never stored, whatever a caller puts in `details`: an audit row must not hold a credential.
_FORBIDDEN_DETAIL_WORDS = ("secret", "token", "password", "hash", "code", "key", "authorization")
_MAX_DETAIL_ITEMS = 20


def _safe_details(details: Mapping[str, Any]) -> dict[str, Any]:
    safe: dict[str, Any] = {}
    for key, value in list(details.items())[:_MAX_DETAIL_ITEMS]:
        if any(word in key.lower() for word in _FORBIDDEN_DETAIL_WORDS):
            continue
        if isinstance(value, str):
            value = value[:200]
        elif isinstance(value, list | tuple):
            value = [str(v)[:200] for v in value[:50]]
        elif not isinstance(value, int | float | bool) and value is not None:
            value = str(value)[:200]
        safe[key] = value
    return safe


@dataclass(frozen=True, slots=True)
class AuditEvent:
    action: AuditAction
    actor: Actor
    target: Target | None = None
    outcome: Outcome = Outcome.SUCCESS
    details: Mapping[str, Any] = field(default_factory=dict)

    def values(self) -> dict[str, Any]:
        """The row, with client IP, user agent and request id from the request's context."""
        user_agent = user_agent_var.get()
        return {
            "actor_kind": str(self.actor.kind),
            "actor_id": self.actor.id,
            "action": str(self.action),
            "target_kind": self.target.kind if self.target else None,
            "target_id": self.target.id if self.target else None,
            "outcome": str(self.outcome),
            "client_ip": client_ip_var.get(),
            "user_agent": user_agent[:512] if user_agent else None,
            "request_id": request_id_var.get(),
            "details": _safe_details(self.details),
        }


def _log(values: Mapping[str, Any]) -> None:
    # `request_id` is stamped on every record already; the rest goes as fields.
    fields = {f"audit_{k}": v for k, v in values.items() if k != "request_id"}
    logger.info("audit event", extra=fields)


async def record(session: AsyncSession, event: AuditEvent) -> None:
    """Record `event` in `session`'s transaction: it is kept only if the change commits."""
    values = event.values()
    await AuditRepository(session).add(values)
    _log(values)


async def record_detached(
    session_factory: async_sessionmaker[AsyncSession], event: AuditEvent
) -> None:
    """Record `event` in a short transaction of its own.

    For denials and failures, whose request transaction rolls back. A database fault here
    is logged, never raised: the caller is already answering an error.
    """
    values = event.values()
    _log(values)
    try:
        async with session_factory.begin() as session:
            await AuditRepository(session).add(values)
    except (SQLAlchemyError, OSError) as exc:
        logger.error("audit event not stored", extra={"error_type": type(exc).__name__})


class TripThrottle:
    """Rate-limit trips are audited once per key per minute, per process: a flood of refused
    requests must not become a flood of audit rows (they are counted in metrics instead)."""

    def __init__(self, interval: float = 60.0, max_keys: int = 10_000) -> None:
        self.interval = interval
        self.max_keys = max_keys
        self._last: dict[str, float] = {}

    def first(self, key: str) -> bool:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            return False
        if len(self._last) >= self.max_keys:
            self._last = {k: v for k, v in self._last.items() if now - v < self.interval}
        self._last[key] = now
        return True


trip_throttle = TripThrottle()


def rate_limit_event(actor: Actor, limit_name: str) -> AuditEvent:
    return AuditEvent(
        AuditAction.RATE_LIMITED,
        actor,
        Target("endpoint", limit_name),
        Outcome.DENIED,
        {"limit": limit_name},
    )
