"""The privilege ceiling: a principal may only hand out, or act on, what it holds itself.

Checked in the service layer, so every caller (HTTP endpoints and operator commands alike)
goes through it. Operators and the system (`Actor.permissions is None`) are not bounded; they
are still audited.

Rules (docs/rbac.md):
- assigning or removing a role needs every permission the role carries; the `admin` role
  also needs the caller to hold `admin` itself;
- granting a permission to a role needs that permission;
- acting on a client (edit, deactivate, rotate, delete, change roles) or deleting a user
  needs every permission that client or user holds;
- the last user or active client holding `admin` keeps it (409 `last_admin`); a banned user
  does not count as holding it, where the caller can tell (`usable`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.audit import AuditAction, AuditEvent, Outcome, Target
from auth_service.core.actor import Actor
from auth_service.rbac.constants import ADMIN_ROLE
from auth_service.rbac.errors import LastAdmin, PrivilegeCeiling
from auth_service.rbac.repository import CeilingRepository, RoleRepository


class PrivilegeCeilingGuard:
    def __init__(self, session: AsyncSession, actor: Actor) -> None:
        self.repo = CeilingRepository(session)
        self.roles = RoleRepository(session)
        self.actor = actor

    def _check(
        self,
        permissions: Iterable[str],
        roles: Iterable[str],
        attempted: AuditAction,
        target: Target,
    ) -> None:
        if not self.actor.bounded:
            return
        missing_permissions = self.actor.missing(set(permissions))
        missing_roles = sorted(r for r in set(roles) if not self.actor.holds_role(r))
        if missing_permissions or missing_roles:
            error = PrivilegeCeiling(
                missing_permissions=missing_permissions, missing_roles=missing_roles
            )
            # Recorded in its own transaction by the error handler (this one rolls back).
            error.audit_event = AuditEvent(
                AuditAction.PRIVILEGE_CEILING,
                self.actor,
                target,
                Outcome.DENIED,
                {
                    "attempted": str(attempted),
                    "missing_permissions": missing_permissions,
                    "missing_roles": missing_roles,
                },
            )
            raise error

    async def check_roles(
        self, roles: dict[uuid.UUID, str], attempted: AuditAction, target: Target
    ) -> None:
        """May the actor give (or take away) these roles?"""
        if not self.actor.bounded or not roles:
            return
        permissions = await self.repo.permissions_of_roles(roles)
        admin = [name for name in roles.values() if name == ADMIN_ROLE]
        self._check(permissions, admin, attempted, target)

    def check_permission(self, name: str, attempted: AuditAction, target: Target) -> None:
        self._check([name], (), attempted, target)

    async def check_client(self, client_id: uuid.UUID, attempted: AuditAction) -> None:
        """May the actor act on this client: does it hold everything the client holds?"""
        if self.actor.bounded:
            roles = await self.repo.roles_of_client(client_id)
            await self.check_roles(roles, attempted, Target("client", str(client_id)))

    async def check_user(self, user_id: uuid.UUID, attempted: AuditAction) -> None:
        if self.actor.bounded:
            roles = await self.repo.roles_of_user(user_id)
            await self.check_roles(roles, attempted, Target("user", str(user_id)))

    async def keep_an_admin(self, role_id: uuid.UUID, role_name: str) -> None:
        """Before one holder loses `role`: refuse when it is the last holder of `admin`."""
        if role_name != ADMIN_ROLE:
            return
        if await self.repo.lock_role_holders(role_id) <= 1:
            raise LastAdmin()

    async def keep_an_admin_without(
        self,
        holder_roles: dict[uuid.UUID, str],
        *,
        user_id: uuid.UUID | None = None,
        usable: Callable[[uuid.UUID], Awaitable[bool]] | None = None,
    ) -> None:
        """Before a user or client holding these roles goes away (delete, deactivate, ban).

        With `user_id` and `usable`: the other user holders count only when `usable` says so
        (a banned admin cannot sign in to use the role)."""
        for role_id, name in holder_roles.items():
            if usable is None or user_id is None or name != ADMIN_ROLE:
                await self.keep_an_admin(role_id, name)
                continue
            users, clients = await self.repo.lock_role_holder_ids(role_id)
            if clients:
                continue
            for holder in users:
                if holder != user_id and await usable(holder):
                    break
            else:
                raise LastAdmin()

    async def holder_roles_of_client(self, client_id: uuid.UUID) -> dict[uuid.UUID, str]:
        return await self.repo.roles_of_client(client_id)

    async def holder_roles_of_user(self, user_id: uuid.UUID) -> dict[uuid.UUID, str]:
        return await self.repo.roles_of_user(user_id)
