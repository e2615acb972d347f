"""Startup seeding: core roles and permissions, and the initial admin. Idempotent."""

from __future__ import annotations

import logging
import uuid
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_service import audit
from auth_service.audit import AuditAction, AuditEvent, Target
from auth_service.config import Settings
from auth_service.core.actor import SYSTEM
from auth_service.rbac.constants import ADMIN_ROLE, CORE_PERMISSIONS, CORE_ROLES
from auth_service.rbac.repository import (
    AssignmentRepository,
    PermissionRepository,
    ProfileLookupRepository,
    RoleRepository,
)

logger = logging.getLogger("auth_service.rbac.bootstrap")


class AccountCreator(Protocol):
    """The part of the identity provider the bootstrap needs (IdentityProvider satisfies it)."""

    async def admin_ensure_user(self, email: str, password: str) -> uuid.UUID: ...


async def seed_core_rbac(session: AsyncSession) -> None:
    """Create missing core roles and permissions; give `admin` every core permission.

    Existing rows are left alone (an edited description survives), and custom permissions are
    never granted here: only explicitly.
    """
    roles = RoleRepository(session)
    permissions = PermissionRepository(session)
    await roles.ensure(CORE_ROLES)
    await permissions.ensure(CORE_PERMISSIONS)
    admin_id = (await roles.ids_by_name([ADMIN_ROLE]))[ADMIN_ROLE]
    permission_ids = (await permissions.ids_by_name(CORE_PERMISSIONS)).values()
    await AssignmentRepository(session).grant_permissions(admin_id, permission_ids)


async def ensure_admin_user(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Give a user a profile (if missing) and the `admin` role (if missing)."""
    await ProfileLookupRepository(session).ensure(user_id)
    admin_id = (await RoleRepository(session).ids_by_name([ADMIN_ROLE]))[ADMIN_ROLE]
    await AssignmentRepository(session).assign_role(user_id, admin_id)


async def bootstrap_initial_admin(
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    provider: AccountCreator | None,
) -> uuid.UUID | None:
    """With INITIAL_ADMIN_EMAIL and INITIAL_ADMIN_PASSWORD set, make that user an admin.

    Returns the admin's user id, or None when skipped. Needs the identity provider (Supabase);
    without one it logs a warning and skips, since a user can only exist there.
    """
    email = settings.initial_admin_email
    password = settings.initial_admin_password
    if not email and not password:
        return None
    if not email or not password:
        logger.warning(
            "initial admin skipped: set both INITIAL_ADMIN_EMAIL and INITIAL_ADMIN_PASSWORD"
        )
        return None
    if provider is None:
        logger.warning(
            "initial admin skipped: INITIAL_ADMIN_EMAIL is set but Supabase is not configured"
            " (SUPABASE_URL, SUPABASE_ANON_KEY, SUPABASE_SERVICE_ROLE_KEY); users live there"
        )
        return None
    try:
        user_id = await provider.admin_ensure_user(email, password.get_secret_value())
    except Exception as exc:
        # The service stays useful without it; the next start tries again. No email, no secret.
        logger.error(
            "initial admin not created: the identity provider failed",
            extra={"error_type": type(exc).__name__},
        )
        return None
    async with session_factory.begin() as session:
        await ensure_admin_user(session, user_id)
        await audit.record(
            session,
            AuditEvent(AuditAction.RBAC_BOOTSTRAP, SYSTEM, Target("user", str(user_id))),
        )
    logger.info("initial admin ensured", extra={"user_id": str(user_id)})
    return user_id
