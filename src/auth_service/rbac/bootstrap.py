"""Idempotent seeding of the core roles and permissions."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.rbac.constants import ADMIN_ROLE, CORE_PERMISSIONS, CORE_ROLES
from auth_service.rbac.models import Permission, Role, RolePermission


async def seed_core_rbac(session: AsyncSession) -> None:
    """Create core roles and permissions; give `admin` every core permission. Safe to rerun."""
    await session.execute(
        insert(Role)
        .values([{"name": n, "description": d} for n, d in CORE_ROLES.items()])
        .on_conflict_do_nothing(index_elements=[Role.name])
    )
    await session.execute(
        insert(Permission)
        .values([{"name": n, "description": d} for n, d in CORE_PERMISSIONS.items()])
        .on_conflict_do_nothing(index_elements=[Permission.name])
    )
    admin_id = await session.scalar(select(Role.id).where(Role.name == ADMIN_ROLE))
    permission_ids = (
        await session.scalars(select(Permission.id).where(Permission.name.in_(CORE_PERMISSIONS)))
    ).all()
    await session.execute(
        insert(RolePermission)
        .values([{"role_id": admin_id, "permission_id": pid} for pid in permission_ids])
        .on_conflict_do_nothing()
    )
