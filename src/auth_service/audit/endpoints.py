"""GET /auth/admin/audit-events: the audit log, newest first, keyset-paginated."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import AfterValidator, BeforeValidator

from auth_service.audit.repository import AuditFilter, AuditRepository
from auth_service.audit.schemas import (
    CURSOR_PATTERN,
    AuditEventPage,
    AuditEventRead,
    decode_cursor,
    encode_cursor,
)
from auth_service.audit.service import AuditAction, Outcome
from auth_service.core.actor import ActorKind
from auth_service.core.db import DbSession
from auth_service.core.pagination import MAX_PAGE_SIZE
from auth_service.rbac.authorization import Principal, permission_doc, require_permission

router = APIRouter(prefix="/auth/admin", tags=["audit"])

AuditReader = Annotated[Principal, Depends(require_permission("audit:read"))]
Text = Annotated[str | None, Query(min_length=1, max_length=128)]
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _rfc3339(value: object) -> object:
    """Only the schema's `date-time` (RFC 3339, with an offset): pydantic alone would also
    take a bare number as Unix time, or a time without an offset."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("expected an RFC 3339 date-time with an offset")
    return value


def _utc(value: datetime) -> datetime:
    """In UTC; an instant outside datetime's range (0001-01-01T00:00+01:00) is its bound."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        bound = datetime.min if value.year == 1 else datetime.max
        return bound.replace(tzinfo=UTC)


Instant = Annotated[datetime, BeforeValidator(_rfc3339), AfterValidator(_utc)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, invalid, expired or revoked bearer token."},
    403: {
        "description": "`insufficient_permissions` without `audit:read`; `mfa_required` for a"
        " human admin below aal2."
    },
    422: {"description": "A malformed filter or cursor (`validation_error`)."},
}


@router.get(
    "/audit-events",
    response_model=AuditEventPage,
    responses=_ERRORS,
    summary="The audit log, newest first",
    **permission_doc(
        "audit:read",
        description="Filters combine with AND; `since` is inclusive, `until` exclusive."
        " Keyset pagination: pass `next_cursor` back as `cursor` for older events.",
    ),
)
async def list_audit_events(
    _: AuditReader,
    session: DbSession,
    actor_kind: ActorKind | None = None,
    actor_id: Text = None,
    action: AuditAction | None = None,
    target_kind: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
    target_id: Text = None,
    outcome: Outcome | None = None,
    since: Annotated[Instant | None, Query()] = None,
    until: Annotated[Instant | None, Query()] = None,
    cursor: Annotated[
        str | None,
        Query(pattern=CURSOR_PATTERN, description="`next_cursor` of the previous page."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
) -> AuditEventPage:
    where = AuditFilter(
        actor_kind=actor_kind,
        actor_id=actor_id,
        action=action,
        target_kind=target_kind,
        target_id=target_id,
        outcome=outcome,
        since=since,
        until=until,
    )
    after = decode_cursor(cursor) if cursor else None
    rows = await AuditRepository(session).page(where, limit=limit + 1, after=after)
    items = [AuditEventRead.model_validate(row) for row in rows[:limit]]
    last = items[-1] if len(rows) > limit else None
    return AuditEventPage(
        items=items, next_cursor=encode_cursor(last.occurred_at, last.id) if last else None
    )
