"""RBAC rules: names are unique, core roles and permissions stay, assignments are idempotent.

The service never commits; the request-scoped session does.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from auth_service import audit
from auth_service.audit import AuditAction, AuditEvent, Target
from auth_service.core.actor import OPERATOR, Actor
from auth_service.identity.port import IdentityUser
from auth_service.rbac.ceiling import PrivilegeCeilingGuard
from auth_service.rbac.constants import ADMIN_ROLE, CORE_PERMISSIONS, CORE_ROLES
from auth_service.rbac.errors import (
    AssignmentNotFound,
    CoreGrantProtected,
    CorePermissionProtected,
    CoreRoleProtected,
    PermissionInUse,
    PermissionNameTaken,
    PermissionNotFound,
    RoleInUse,
    RoleNameTaken,
    RoleNotFound,
    UserNotFound,
)
from auth_service.rbac.models import Permission, Role
from auth_service.rbac.names import check_permission_name, check_role_name
from auth_service.rbac.repository import (
    AssignmentRepository,
    PermissionRepository,
    ProfileLookupRepository,
    RoleRepository,
)
from auth_service.rbac.schemas import (
    AssignedRole,
    GrantedPermission,
    PermissionRef,
    PermissionWrite,
    RolePermissionAssignment,
    RolePermissions,
    RoleRef,
    RoleWrite,
    UserRoleAssignment,
    UserRoles,
)


async def _id_for(
    ref: str, ids_by_name: Callable[[list[str]], Awaitable[dict[str, uuid.UUID]]]
) -> uuid.UUID | None:
    try:
        return uuid.UUID(ref)
    except ValueError:
        return (await ids_by_name([ref])).get(ref)


class UserDirectory(Protocol):
    """The part of the identity provider RBAC needs (IdentityProvider satisfies it)."""

    async def admin_get_user(self, user_id: uuid.UUID) -> IdentityUser | None: ...


class RbacService:
    """`actor` is who calls: endpoints pass the principal's actor (bounded by the privilege
    ceiling); operator commands keep the default, `OPERATOR` (unbounded, still audited)."""

    def __init__(
        self,
        session: AsyncSession,
        users: UserDirectory | None = None,
        *,
        actor: Actor = OPERATOR,
    ) -> None:
        self.session = session
        self.actor = actor
        self.ceiling = PrivilegeCeilingGuard(session, actor)
        self.roles = RoleRepository(session)
        self.permissions = PermissionRepository(session)
        self.assignments = AssignmentRepository(session)
        self.profiles = ProfileLookupRepository(session)
        self.users = users

    # --- addressing ----------------------------------------------------------------------

    async def role_id_for(self, ref: str) -> uuid.UUID:
        """A role addressed by id or by name."""
        found = await _id_for(ref, self.roles.ids_by_name)
        if found is None:
            raise RoleNotFound(f"No role named {ref!r}.")
        return found

    async def permission_id_for(self, ref: str) -> uuid.UUID:
        """A permission addressed by id or by name."""
        found = await _id_for(ref, self.permissions.ids_by_name)
        if found is None:
            raise PermissionNotFound(f"No permission named {ref!r}.")
        return found

    async def _audit(
        self, action: AuditAction, target: Target, details: dict[str, object] | None = None
    ) -> None:
        await audit.record(
            self.session, AuditEvent(action, self.actor, target, details=details or {})
        )

    # --- roles ---------------------------------------------------------------------------

    async def list_roles(
        self, *, name: str | None, limit: int, offset: int
    ) -> tuple[Sequence[Role], int]:
        return await self.roles.list(name_contains=name, limit=limit, offset=offset)

    async def get_role(self, role_id: uuid.UUID, *, key_share_lock: bool = False) -> Role:
        role = await self.roles.get(role_id, key_share_lock=key_share_lock)
        if role is None:
            raise RoleNotFound()
        return role

    async def create_role(self, data: RoleWrite) -> Role:
        check_role_name(data.name)
        role = await self.roles.create(data.name, data.description)
        if role is None:
            raise RoleNameTaken(details={"name": data.name})
        await self._audit(AuditAction.ROLE_CREATE, _role(role))
        return role

    async def update_role(self, role_id: uuid.UUID, data: RoleWrite) -> Role:
        check_role_name(data.name)
        role = await self.get_role(role_id)
        if role.name in CORE_ROLES and data.name != role.name:
            raise CoreRoleProtected()
        if not await self.roles.update(role, data.name, data.description):
            raise RoleNameTaken(details={"name": data.name})
        await self._audit(AuditAction.ROLE_UPDATE, _role(role))
        return role

    async def delete_role(self, role_id: uuid.UUID, *, force: bool) -> None:
        role = await self.get_role(role_id)
        if role.name in CORE_ROLES:
            raise CoreRoleProtected()
        # Deleting a role takes its permissions from every holder: only for who holds them.
        await self.ceiling.check_roles({role.id: role.name}, AuditAction.ROLE_DELETE, _role(role))
        if not force:
            holders = await self.roles.holder_count(role.id)
            if holders:
                raise RoleInUse(
                    f"The role is still assigned to {holders} user(s) or client(s)."
                    " Remove those assignments first, or pass force=true to delete it with them.",
                    details={"assignments": holders},
                )
        # Assignments and grants go with it (ON DELETE CASCADE).
        await self.roles.delete(role)
        await self._audit(AuditAction.ROLE_DELETE, _role(role), {"force": force})

    # --- permissions ---------------------------------------------------------------------

    async def list_permissions(
        self, *, name: str | None, limit: int, offset: int
    ) -> tuple[Sequence[Permission], int]:
        return await self.permissions.list(name_contains=name, limit=limit, offset=offset)

    async def get_permission(
        self, permission_id: uuid.UUID, *, key_share_lock: bool = False
    ) -> Permission:
        permission = await self.permissions.get(permission_id, key_share_lock=key_share_lock)
        if permission is None:
            raise PermissionNotFound()
        return permission

    async def create_permission(self, data: PermissionWrite) -> Permission:
        check_permission_name(data.name)
        permission = await self.permissions.create(data.name, data.description)
        if permission is None:
            raise PermissionNameTaken(details={"name": data.name})
        await self._audit(AuditAction.PERMISSION_CREATE, _permission(permission))
        return permission

    async def update_permission(
        self, permission_id: uuid.UUID, data: PermissionWrite
    ) -> Permission:
        check_permission_name(data.name)
        permission = await self.get_permission(permission_id)
        if permission.name in CORE_PERMISSIONS and data.name != permission.name:
            raise CorePermissionProtected()
        if not await self.permissions.update(permission, data.name, data.description):
            raise PermissionNameTaken(details={"name": data.name})
        await self._audit(AuditAction.PERMISSION_UPDATE, _permission(permission))
        return permission

    async def delete_permission(self, permission_id: uuid.UUID, *, force: bool) -> None:
        permission = await self.get_permission(permission_id)
        if permission.name in CORE_PERMISSIONS:
            raise CorePermissionProtected()
        self.ceiling.check_permission(
            permission.name, AuditAction.PERMISSION_DELETE, _permission(permission)
        )
        if not force:
            grants = await self.permissions.grant_count(permission.id)
            if grants:
                raise PermissionInUse(
                    f"The permission is still granted to {grants} role(s)."
                    " Revoke it first, or pass force=true to delete it with its grants.",
                    details={"grants": grants},
                )
        await self.permissions.delete(permission)
        await self._audit(AuditAction.PERMISSION_DELETE, _permission(permission), {"force": force})

    # --- role -> permission --------------------------------------------------------------

    async def grant_permission(
        self, role_id: uuid.UUID, permission_id: uuid.UUID
    ) -> RolePermissionAssignment:
        """Idempotent: granting again returns the same body (with the original time)."""
        # Key-share locks: neither row can be deleted before this grant commits.
        role = await self.get_role(role_id, key_share_lock=True)
        permission = await self.get_permission(permission_id, key_share_lock=True)
        self.ceiling.check_permission(
            permission.name, AuditAction.ROLE_PERMISSION_GRANT, _role(role)
        )
        assigned_at = await self.assignments.grant_permission(role.id, permission.id)
        await self._audit(
            AuditAction.ROLE_PERMISSION_GRANT, _role(role), {"permission": permission.name}
        )
        return RolePermissionAssignment(
            role=RoleRef.model_validate(role),
            permission=PermissionRef.model_validate(permission),
            assigned_at=assigned_at,
        )

    async def revoke_permission(self, role_id: uuid.UUID, permission_id: uuid.UUID) -> None:
        role = await self.get_role(role_id)
        permission = await self.get_permission(permission_id)
        if role.name == ADMIN_ROLE and permission.name in CORE_PERMISSIONS:
            raise CoreGrantProtected()
        self.ceiling.check_permission(
            permission.name, AuditAction.ROLE_PERMISSION_REVOKE, _role(role)
        )
        if not await self.assignments.revoke_permission(role.id, permission.id):
            raise AssignmentNotFound("The role does not hold that permission.")
        await self._audit(
            AuditAction.ROLE_PERMISSION_REVOKE, _role(role), {"permission": permission.name}
        )

    async def permissions_of_role(self, role_id: uuid.UUID) -> RolePermissions:
        role = await self.get_role(role_id)
        rows = await self.assignments.permissions_of_role(role.id)
        return RolePermissions(
            role=RoleRef.model_validate(role),
            permissions=[
                GrantedPermission(
                    id=p.id, name=p.name, description=p.description, assigned_at=assigned_at
                )
                for p, assigned_at in rows
            ],
        )

    # --- user -> role --------------------------------------------------------------------

    async def require_user(self, user_id: uuid.UUID) -> None:
        """A user is known when their profile exists, or the identity provider knows them
        (then the profile is created)."""
        if await self.profiles.exists(user_id):
            return
        if self.users is not None and await self.users.admin_get_user(user_id) is not None:
            await self.profiles.ensure(user_id)
            return
        raise UserNotFound()

    async def assign_role(self, user_id: uuid.UUID, role_id: uuid.UUID) -> UserRoleAssignment:
        """Idempotent: assigning again returns the same body (with the original time)."""
        role = await self.get_role(role_id, key_share_lock=True)
        await self.require_user(user_id)
        target = Target("user", str(user_id))
        await self.ceiling.check_roles({role.id: role.name}, AuditAction.USER_ROLE_ASSIGN, target)
        assigned_at = await self.assignments.assign_role(user_id, role.id)
        await self._audit(AuditAction.USER_ROLE_ASSIGN, target, {"role": role.name})
        return UserRoleAssignment(
            user_id=user_id, role=RoleRef.model_validate(role), assigned_at=assigned_at
        )

    async def unassign_role(self, user_id: uuid.UUID, role_id: uuid.UUID) -> None:
        role = await self.get_role(role_id)
        await self.require_user(user_id)
        target = Target("user", str(user_id))
        await self.ceiling.check_roles({role.id: role.name}, AuditAction.USER_ROLE_REMOVE, target)
        if role.id in await self.ceiling.holder_roles_of_user(user_id):
            await self.ceiling.keep_an_admin(role.id, role.name)
        if not await self.assignments.unassign_role(user_id, role.id):
            raise AssignmentNotFound("The user does not hold that role.")
        await self._audit(AuditAction.USER_ROLE_REMOVE, target, {"role": role.name})

    async def roles_of_user(self, user_id: uuid.UUID) -> UserRoles:
        await self.require_user(user_id)
        rows = await self.assignments.roles_of_user(user_id)
        return UserRoles(
            user_id=user_id,
            roles=[
                AssignedRole(
                    id=r.id, name=r.name, description=r.description, assigned_at=assigned_at
                )
                for r, assigned_at in rows
            ],
        )


def _role(role: Role) -> Target:
    return Target("role", str(role.id))


def _permission(permission: Permission) -> Target:
    return Target("permission", str(permission.id))
