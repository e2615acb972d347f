"""Revocation queries, each in its own short transaction: a revocation is durable on return,
whatever happens to the request's own transaction afterwards."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_service.revocation.models import Revocation


class RevocationRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def put(self, key: str, value: str, ttl_seconds: int) -> None:
        expires = datetime.now(UTC) + timedelta(seconds=max(1, ttl_seconds))
        statement = insert(Revocation).values(key=key, value=value, expires_at=expires)
        statement = statement.on_conflict_do_update(
            index_elements=[Revocation.key],
            # A later cutoff replaces an earlier one; an entry never expires sooner than it did.
            set_={
                "value": statement.excluded.value,
                "expires_at": func.greatest(Revocation.expires_at, statement.excluded.expires_at),
            },
        )
        async with self.engine.begin() as conn:
            await conn.execute(statement)

    async def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(Revocation.key, Revocation.value).where(
                    Revocation.key.in_(list(keys)), Revocation.expires_at > func.now()
                )
            )
            return {str(row[0]): str(row[1]) for row in rows}

    async def live(self) -> list[tuple[str, str, int]]:
        """Every unexpired entry as (key, value, seconds left)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(
                    Revocation.key,
                    Revocation.value,
                    func.ceil(func.extract("epoch", Revocation.expires_at - func.now())),
                ).where(Revocation.expires_at > func.now())
            )
            return [(key, value, max(1, int(left))) for key, value, left in rows]

    async def prune(self) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(Revocation).where(Revocation.expires_at <= func.now())
            )
            return int(result.rowcount or 0)
