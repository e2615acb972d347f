"""Signing-key queries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.oauth2.models import SigningKey

# Any constant works: serialises key creation and rotation across replicas and the CLI.
_KEYS_LOCK_ID = 0x5A17_0002


class SigningKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock(self) -> None:
        """Transaction-scoped advisory lock around key creation and rotation."""
        await self.session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _KEYS_LOCK_ID})

    async def all_newest_first(self) -> Sequence[SigningKey]:
        rows = await self.session.scalars(
            select(SigningKey).order_by(SigningKey.created_at.desc(), SigningKey.kid)
        )
        return rows.all()

    async def has_active(self) -> bool:
        kid = await self.session.scalar(
            select(SigningKey.kid).where(SigningKey.retired_at.is_(None)).limit(1)
        )
        return kid is not None

    async def add(self, key: SigningKey) -> None:
        self.session.add(key)
        await self.session.flush()

    async def retire_all_except(self, kid: str) -> None:
        await self.session.execute(
            update(SigningKey)
            .where(SigningKey.kid != kid, SigningKey.retired_at.is_(None))
            .values(retired_at=func.now())
        )

    async def delete_retired_before(self, cutoff: datetime) -> int:
        result = await self.session.execute(
            delete(SigningKey)
            .where(SigningKey.retired_at.is_not(None), SigningKey.retired_at < cutoff)
            .returning(SigningKey.kid)
        )
        return len(result.all())

    async def delete(self, kid: str) -> bool:
        result = await self.session.execute(
            delete(SigningKey).where(SigningKey.kid == kid).returning(SigningKey.kid)
        )
        return result.first() is not None
