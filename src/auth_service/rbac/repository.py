"""RBAC queries."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.clients.models import AppClient, AppClientRole
from auth_service.core.security import Identity
from auth_service.rbac.models import Permission, Role, RolePermission, UserRole
from auth_service.users.models import Profile


class AuthorizationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def grants_for(self, identity: Identity) -> tuple[frozenset[str], frozenset[str]] | None:
        """Roles and permissions of an identity now; None if the subject is inactive or gone."""
        query: Select[str, str | None]
        if identity.kind == "client":
            active = await self.session.scalar(
                select(AppClient.is_active).where(AppClient.id == identity.subject)
            )
            if not active:
                return None
            query = (
                select(Role.name, Permission.name)
                .select_from(AppClientRole)
                .join(Role, Role.id == AppClientRole.role_id)
                .outerjoin(RolePermission, RolePermission.role_id == Role.id)
                .outerjoin(Permission, Permission.id == RolePermission.permission_id)
                .where(AppClientRole.client_id == identity.subject)
            )
        else:
            profile_active = await self.session.scalar(
                select(Profile.is_active).where(Profile.user_id == identity.subject)
            )
            if profile_active is False:
                return None
            query = (
                select(Role.name, Permission.name)
                .select_from(UserRole)
                .join(Role, Role.id == UserRole.role_id)
                .outerjoin(RolePermission, RolePermission.role_id == Role.id)
                .outerjoin(Permission, Permission.id == RolePermission.permission_id)
                .where(UserRole.user_id == identity.subject)
            )
        rows = (await self.session.execute(query)).all()
        roles = frozenset(role for role, _ in rows)
        permissions = frozenset(perm for _, perm in rows if perm is not None)
        return roles, permissions
