"""RBAC queries: the only place this domain talks SQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy import Select, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.clients.models import AppClient, AppClientRole
from auth_service.core.security import Identity
from auth_service.rbac.models import Permission, Role, RolePermission, UserRole
from auth_service.users.models import Profile

_UNIQUE_VIOLATION = "23505"
# Names sort in byte order whatever the server's locale, as in the claims SQL functions.
BYTE_ORDER = "C"


def _is_unique_violation(exc: IntegrityError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == _UNIQUE_VIOLATION


def _returned(value: datetime | None) -> datetime:
    # INSERT .. ON CONFLICT DO UPDATE .. RETURNING always yields the row.
    if value is None:
        raise RuntimeError("upsert returned no row")
    return value


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


# Roles and permissions have the same shape (id, unique name, description); one repository
# serves both. A constrained TypeVar lets mypy check the body against each model.
Named = TypeVar("Named", Role, Permission)


class NamedRepository(Generic[Named]):
    def __init__(self, session: AsyncSession, model: type[Named]) -> None:
        self.session = session
        self.model: type[Named] = model

    async def list(
        self, *, name_contains: str | None, limit: int, offset: int
    ) -> tuple[Sequence[Named], int]:
        where = []
        if name_contains:
            where.append(self.model.name.icontains(name_contains, autoescape=True))
        total = await self.session.scalar(
            select(func.count()).select_from(self.model).where(*where)
        )
        rows = await self.session.scalars(
            select(self.model)
            .where(*where)
            .order_by(self.model.name.collate(BYTE_ORDER))
            .limit(limit)
            .offset(offset)
        )
        return rows.all(), total or 0

    async def get(self, entity_id: uuid.UUID, *, key_share_lock: bool = False) -> Named | None:
        """`key_share_lock` keeps the row from being deleted until this transaction ends."""
        query = select(self.model).where(self.model.id == entity_id)
        if key_share_lock:
            query = query.with_for_update(read=True, key_share=True)
        return await self.session.scalar(query)

    async def create(self, name: str, description: str | None) -> Named | None:
        """The new row, or None when the name is taken."""
        created: Named | None = await self.session.scalar(
            insert(self.model)
            .values(name=name, description=description)
            .on_conflict_do_nothing(index_elements=[self.model.name])
            .returning(self.model)
        )
        return created

    async def update(self, entity: Named, name: str, description: str | None) -> bool:
        """Replace name and description; False when the new name is taken."""
        try:
            async with self.session.begin_nested():
                entity.name = name
                entity.description = description
                await self.session.flush()
        except IntegrityError as exc:
            if not _is_unique_violation(exc):
                raise
            return False
        # updated_at is set by the server; load it now rather than lazily outside a greenlet.
        await self.session.refresh(entity)
        return True

    async def delete(self, entity: Named) -> None:
        await self.session.execute(delete(self.model).where(self.model.id == entity.id))

    async def ensure(self, entries: Mapping[str, str]) -> None:
        """Create the named rows that are missing; existing rows are left as they are."""
        await self.session.execute(
            insert(self.model)
            .values([{"name": name, "description": text} for name, text in entries.items()])
            .on_conflict_do_nothing(index_elements=[self.model.name])
        )

    async def ids_by_name(self, names: Iterable[str]) -> dict[str, uuid.UUID]:
        rows = await self.session.execute(
            select(self.model.name, self.model.id).where(self.model.name.in_(list(names)))
        )
        return {name: entity_id for name, entity_id in rows}  # noqa: C416 - Row to tuple


class RoleRepository(NamedRepository[Role]):
    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session, Role)

    async def holder_count(self, role_id: uuid.UUID) -> int:
        """How many users and clients hold the role."""
        users = select(func.count()).where(UserRole.role_id == role_id).scalar_subquery()
        clients = select(func.count()).where(AppClientRole.role_id == role_id).scalar_subquery()
        return await self.session.scalar(select(users + clients)) or 0


class PermissionRepository(NamedRepository[Permission]):
    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session, Permission)

    async def grant_count(self, permission_id: uuid.UUID) -> int:
        """How many roles hold the permission."""
        return (
            await self.session.scalar(
                select(func.count()).where(RolePermission.permission_id == permission_id)
            )
            or 0
        )


class AssignmentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- role -> permission --------------------------------------------------------------

    async def grant_permission(self, role_id: uuid.UUID, permission_id: uuid.UUID) -> datetime:
        """Grant (no-op when already granted); the grant's original assignment time."""
        # DO UPDATE to itself, not DO NOTHING: it locks and returns the existing row too.
        stmt = insert(RolePermission).values(role_id=role_id, permission_id=permission_id)
        assigned_at = await self.session.scalar(
            stmt.on_conflict_do_update(
                index_elements=[RolePermission.role_id, RolePermission.permission_id],
                set_={"assigned_at": RolePermission.assigned_at},
            ).returning(RolePermission.assigned_at)
        )
        return _returned(assigned_at)

    async def grant_permissions(
        self, role_id: uuid.UUID, permission_ids: Iterable[uuid.UUID]
    ) -> None:
        values = [{"role_id": role_id, "permission_id": pid} for pid in permission_ids]
        if values:
            await self.session.execute(
                insert(RolePermission).values(values).on_conflict_do_nothing()
            )

    async def revoke_permission(self, role_id: uuid.UUID, permission_id: uuid.UUID) -> bool:
        """False when the role did not hold the permission."""
        removed = await self.session.scalar(
            delete(RolePermission)
            .where(RolePermission.role_id == role_id, RolePermission.permission_id == permission_id)
            .returning(RolePermission.role_id)
        )
        return removed is not None

    async def permissions_of_role(
        self, role_id: uuid.UUID
    ) -> Sequence[tuple[Permission, datetime]]:
        rows = await self.session.execute(
            select(Permission, RolePermission.assigned_at)
            .join(RolePermission, RolePermission.permission_id == Permission.id)
            .where(RolePermission.role_id == role_id)
            .order_by(Permission.name.collate(BYTE_ORDER))
        )
        return [(permission, assigned_at) for permission, assigned_at in rows]

    # --- user -> role --------------------------------------------------------------------

    async def assign_role(self, user_id: uuid.UUID, role_id: uuid.UUID) -> datetime:
        """Assign (no-op when already assigned); the assignment's original time."""
        stmt = insert(UserRole).values(user_id=user_id, role_id=role_id)
        assigned_at = await self.session.scalar(
            stmt.on_conflict_do_update(
                index_elements=[UserRole.user_id, UserRole.role_id],
                set_={"assigned_at": UserRole.assigned_at},
            ).returning(UserRole.assigned_at)
        )
        return _returned(assigned_at)

    async def unassign_role(self, user_id: uuid.UUID, role_id: uuid.UUID) -> bool:
        """False when the user did not hold the role."""
        removed = await self.session.scalar(
            delete(UserRole)
            .where(UserRole.user_id == user_id, UserRole.role_id == role_id)
            .returning(UserRole.role_id)
        )
        return removed is not None

    async def roles_of_user(self, user_id: uuid.UUID) -> Sequence[tuple[Role, datetime]]:
        rows = await self.session.execute(
            select(Role, UserRole.assigned_at)
            .join(UserRole, UserRole.role_id == Role.id)
            .where(UserRole.user_id == user_id)
            .order_by(Role.name.collate(BYTE_ORDER))
        )
        return [(role, assigned_at) for role, assigned_at in rows]


class ProfileLookupRepository:
    """The one profile question RBAC asks: is this user known here?"""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def exists(self, user_id: uuid.UUID) -> bool:
        found = await self.session.scalar(select(Profile.user_id).where(Profile.user_id == user_id))
        return found is not None

    async def ensure(self, user_id: uuid.UUID) -> None:
        """Create an empty profile for a user the identity provider knows."""
        await self.session.execute(insert(Profile).values(user_id=user_id).on_conflict_do_nothing())


class CeilingRepository:
    """What the privilege ceiling asks: which permissions a role, client or user carries."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def permissions_of_roles(self, role_ids: Iterable[uuid.UUID]) -> frozenset[str]:
        ids = list(role_ids)
        if not ids:
            return frozenset()
        rows = await self.session.scalars(
            select(Permission.name)
            .join(RolePermission, RolePermission.permission_id == Permission.id)
            .where(RolePermission.role_id.in_(ids))
        )
        return frozenset(rows.all())

    async def roles_of_client(self, client_id: uuid.UUID) -> dict[uuid.UUID, str]:
        rows = await self.session.execute(
            select(Role.id, Role.name)
            .join(AppClientRole, AppClientRole.role_id == Role.id)
            .where(AppClientRole.client_id == client_id)
        )
        return {role_id: name for role_id, name in rows}  # noqa: C416 - Row to tuple

    async def roles_of_user(self, user_id: uuid.UUID) -> dict[uuid.UUID, str]:
        rows = await self.session.execute(
            select(Role.id, Role.name)
            .join(UserRole, UserRole.role_id == Role.id)
            .where(UserRole.user_id == user_id)
        )
        return {role_id: name for role_id, name in rows}  # noqa: C416 - Row to tuple

    async def lock_role_holders(self, role_id: uuid.UUID) -> int:
        """How many users and active clients hold the role, locking those rows."""
        users, clients = await self.lock_role_holder_ids(role_id)
        return len(users) + len(clients)

    async def lock_role_holder_ids(
        self, role_id: uuid.UUID
    ) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
        """The users and active clients holding the role, locking those rows.

        FOR UPDATE on the assignment rows serialises two concurrent removals of the last two
        admins: the second one waits, then sees one holder left.
        """
        users = (
            await self.session.scalars(
                select(UserRole.user_id).where(UserRole.role_id == role_id).with_for_update()
            )
        ).all()
        clients = (
            await self.session.scalars(
                select(AppClientRole.client_id)
                .join(AppClient, AppClient.id == AppClientRole.client_id)
                .where(AppClientRole.role_id == role_id, AppClient.is_active.is_(True))
                .with_for_update(of=AppClientRole)
            )
        ).all()
        return list(users), list(clients)
