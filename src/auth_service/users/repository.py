"""Profile queries (and the user's rows in other domains' tables, for reads and deletion)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.rbac.models import Role, UserRole
from auth_service.users.models import Profile


class ProfileRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: uuid.UUID) -> Profile | None:
        return await self.session.get(Profile, user_id)

    async def create(self, user_id: uuid.UUID, **fields: Any) -> Profile:
        """Insert a new profile; a unique violation (id or username) raises IntegrityError."""
        profile = Profile(user_id=user_id, **fields)
        self.session.add(profile)
        await self.session.flush()
        return profile

    async def get_or_create(self, user_id: uuid.UUID, **fields: Any) -> Profile:
        """Race-safe: concurrent first requests of one user both end up with the same row."""
        await self.session.execute(
            insert(Profile)
            .values(user_id=user_id, **fields)
            .on_conflict_do_nothing(index_elements=[Profile.user_id])
        )
        profile = await self.session.scalar(
            select(Profile)
            .where(Profile.user_id == user_id)
            .execution_options(populate_existing=True)
        )
        assert profile is not None  # noqa: S101 - inserted or already present just above
        return profile

    async def username_taken(self, username: str, *, except_user: uuid.UUID) -> bool:
        found = await self.session.scalar(
            select(Profile.user_id).where(
                Profile.username == username, Profile.user_id != except_user
            )
        )
        return found is not None

    async def update(self, user_id: uuid.UUID, **fields: Any) -> Profile | None:
        if fields:
            await self.session.execute(
                update(Profile).where(Profile.user_id == user_id).values(**fields)
            )
        return await self.session.scalar(
            select(Profile)
            .where(Profile.user_id == user_id)
            .execution_options(populate_existing=True)
        )

    async def delete(self, user_id: uuid.UUID) -> bool:
        result = await self.session.execute(delete(Profile).where(Profile.user_id == user_id))
        return bool(getattr(result, "rowcount", 0))

    async def role_names(self, user_id: uuid.UUID) -> list[str]:
        rows = await self.session.scalars(
            select(Role.name)
            .join(UserRole, UserRole.role_id == Role.id)
            .where(UserRole.user_id == user_id)
            .order_by(Role.name)
        )
        return list(rows)

    async def delete_role_assignments(self, user_id: uuid.UUID) -> None:
        await self.session.execute(delete(UserRole).where(UserRole.user_id == user_id))
