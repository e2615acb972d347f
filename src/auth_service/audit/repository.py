"""Audit queries: insert, keyset-paged reads, prune."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.audit.models import AuditEventRow


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor_kind: str | None = None
    actor_id: str | None = None
    action: str | None = None
    target_kind: str | None = None
    target_id: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, values: dict[str, Any]) -> None:
        await self.session.execute(insert(AuditEventRow).values(**values))

    async def page(
        self, where: AuditFilter, *, limit: int, after: tuple[datetime, int] | None
    ) -> Sequence[AuditEventRow]:
        """Newest first; `after` is the (occurred_at, id) of the last row already seen."""
        query = select(AuditEventRow)
        for column, value in (
            (AuditEventRow.actor_kind, where.actor_kind),
            (AuditEventRow.actor_id, where.actor_id),
            (AuditEventRow.action, where.action),
            (AuditEventRow.target_kind, where.target_kind),
            (AuditEventRow.target_id, where.target_id),
            (AuditEventRow.outcome, where.outcome),
        ):
            if value is not None:
                query = query.where(column == value)
        if where.since is not None:
            query = query.where(AuditEventRow.occurred_at >= where.since)
        if where.until is not None:
            query = query.where(AuditEventRow.occurred_at < where.until)
        if after is not None:
            query = query.where(
                tuple_(AuditEventRow.occurred_at, AuditEventRow.id) < tuple_(*after)
            )
        query = query.order_by(AuditEventRow.occurred_at.desc(), AuditEventRow.id.desc())
        return (await self.session.scalars(query.limit(limit))).all()

    async def prune(self, older_than_seconds: int) -> int:
        """Delete events older than that, through the one function the guard trigger allows."""
        removed = await self.session.scalar(
            select(
                func.auth_service_data.audit_events_prune(
                    func.make_interval(0, 0, 0, 0, 0, 0, older_than_seconds)
                )
            )
        )
        return int(removed or 0)
