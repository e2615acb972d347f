"""Every model, imported once so `Base.metadata` is complete (Alembic, drift check)."""

from auth_service.clients.models import AppClient, AppClientRole
from auth_service.core.db import Base
from auth_service.identity.local.models import (
    DevMailboxMessage,
    LocalEmailToken,
    LocalIdentity,
    LocalMfaChallenge,
    LocalMfaFactor,
    LocalMfaUsedCode,
    LocalOAuthFlow,
    LocalRefreshToken,
    LocalSession,
    LocalUser,
)
from auth_service.oauth2.models import SigningKey
from auth_service.rbac.models import Permission, Role, RolePermission, UserRole
from auth_service.revocation.models import Revocation
from auth_service.users.models import Profile

__all__ = [
    "AppClient",
    "AppClientRole",
    "Base",
    "DevMailboxMessage",
    "LocalEmailToken",
    "LocalIdentity",
    "LocalMfaChallenge",
    "LocalMfaFactor",
    "LocalMfaUsedCode",
    "LocalOAuthFlow",
    "LocalRefreshToken",
    "LocalSession",
    "LocalUser",
    "Permission",
    "Profile",
    "Revocation",
    "Role",
    "RolePermission",
    "SigningKey",
    "UserRole",
]
