"""`auth-service rbac ...`: seed RBAC and give a user a role without any admin token."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from typing import Any

from auth_service import audit
from auth_service.audit import AuditAction, AuditEvent, Target
from auth_service.config import Settings
from auth_service.core.actor import OPERATOR
from auth_service.core.db import create_engine, create_session_factory
from auth_service.rbac.bootstrap import seed_core_rbac
from auth_service.rbac.errors import RoleNotFound
from auth_service.rbac.repository import (
    AssignmentRepository,
    ProfileLookupRepository,
    RoleRepository,
)


def register(sub: Any) -> None:  # argparse's _SubParsersAction is private API
    """Add this domain's subcommands to the `auth-service` parser."""
    rbac = sub.add_parser("rbac", help="roles and permissions")
    commands = rbac.add_subparsers(dest="rbac_command", required=True)
    bootstrap = commands.add_parser(
        "bootstrap",
        help="seed core roles and permissions, and the initial admin (INITIAL_ADMIN_*), as"
        " startup does",
    )
    bootstrap.set_defaults(func=_cmd_bootstrap)
    assign = commands.add_parser(
        "assign-role",
        help="give a user (Supabase user id) a role by name, creating their profile if missing;"
        ' prints {"user_id", "role", "assigned_at"}',
    )
    assign.add_argument("--user-id", required=True, type=uuid.UUID)
    assign.add_argument("--role", required=True, help="role name, e.g. admin")
    assign.set_defaults(func=_cmd_assign_role)


def _database_url(settings: Settings) -> str:
    if not settings.auth_service_database_url:
        raise ValueError("AUTH_SERVICE_DATABASE_URL is not set")
    return settings.auth_service_database_url


async def _bootstrap(settings: Settings) -> None:
    # The whole lifespan: the identity provider the initial admin needs starts with it.
    from auth_service.main import create_app

    _database_url(settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        pass


def _cmd_bootstrap(args: argparse.Namespace) -> int:
    asyncio.run(_bootstrap(Settings()))
    print(json.dumps({"status": "ok"}))
    return 0


async def _assign_role(settings: Settings, user_id: uuid.UUID, role: str) -> dict[str, str]:
    engine = create_engine(_database_url(settings), pool_size=1, max_overflow=0)
    try:
        async with create_session_factory(engine).begin() as session:
            await seed_core_rbac(session)
            role_id = (await RoleRepository(session).ids_by_name([role])).get(role)
            if role_id is None:
                raise RoleNotFound(f"No role named {role!r}.")
            # The operator vouches for the user id; there may be no Supabase to ask.
            await ProfileLookupRepository(session).ensure(user_id)
            assigned_at = await AssignmentRepository(session).assign_role(user_id, role_id)
            await audit.record(
                session,
                AuditEvent(
                    AuditAction.USER_ROLE_ASSIGN,
                    OPERATOR,
                    Target("user", str(user_id)),
                    details={"role": role},
                ),
            )
        return {"user_id": str(user_id), "role": role, "assigned_at": assigned_at.isoformat()}
    finally:
        await engine.dispose()


def _cmd_assign_role(args: argparse.Namespace) -> int:
    try:
        result = asyncio.run(_assign_role(Settings(), args.user_id, args.role))
    except RoleNotFound as exc:
        print(f"auth-service: {exc.message} ({exc.code})", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0
