"""`auth-service roles|permissions|rbac ...`: RBAC work from a shell, without any admin token.

`roles` and `permissions` go through `RbacService` (and `ClientService` for client roles), as
the admin endpoints do; names or ids address things; `--json` prints the API's own JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from auth_service import audit
from auth_service.audit import AuditAction, AuditEvent, Target
from auth_service.cli_support import add_json_flag, emit, run_in_session
from auth_service.clients.endpoints import client_read
from auth_service.clients.service import ClientService
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
from auth_service.rbac.schemas import PermissionRead, PermissionWrite, RoleRead, RoleWrite
from auth_service.rbac.service import RbacService

_NAMED = ["name", "id", "is_core", "description", "created_at"]


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
    _register_roles(sub)
    _register_permissions(sub)


def _register_roles(sub: Any) -> None:
    roles = sub.add_parser("roles", help="roles: list, create, grant a permission, assign")
    commands = roles.add_subparsers(dest="roles_command", required=True)
    listing = commands.add_parser("list", help="roles with the permissions each grants")
    listing.add_argument("--name", help="case-insensitive substring filter")
    add_json_flag(listing)
    listing.set_defaults(func=_cmd_roles_list)
    create = commands.add_parser("create", help="create a role")
    create.add_argument("name")
    create.add_argument("--description")
    add_json_flag(create)
    create.set_defaults(func=_cmd_roles_create)
    grant = commands.add_parser("grant", help="grant a permission to a role (idempotent)")
    grant.add_argument("role", metavar="ROLE", help="role name or id")
    grant.add_argument("permission", metavar="PERMISSION", help="permission name or id")
    add_json_flag(grant)
    grant.set_defaults(func=_cmd_roles_grant)
    assign = commands.add_parser("assign", help="give a role to a client or a user (idempotent)")
    assign.add_argument("role", metavar="ROLE", help="role name or id")
    target = assign.add_mutually_exclusive_group(required=True)
    target.add_argument("--client", help="client name or id")
    target.add_argument(
        "--user",
        type=uuid.UUID,
        help="user id (Supabase Auth); the operator vouches for it, a profile is created",
    )
    add_json_flag(assign)
    assign.set_defaults(func=_cmd_roles_assign)


def _register_permissions(sub: Any) -> None:
    permissions = sub.add_parser("permissions", help="permissions: list, create")
    commands = permissions.add_subparsers(dest="permissions_command", required=True)
    listing = commands.add_parser("list", help="permissions")
    listing.add_argument("--name", help="case-insensitive substring filter")
    add_json_flag(listing)
    listing.set_defaults(func=_cmd_permissions_list)
    create = commands.add_parser("create", help="create a permission (resource:action)")
    create.add_argument("name")
    create.add_argument("--description")
    add_json_flag(create)
    create.set_defaults(func=_cmd_permissions_create)


_PAGE = 1000  # the list endpoints' pages, read to the end


def _cmd_roles_list(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession, settings: Settings) -> list[dict[str, Any]]:
        rbac = RbacService(session)
        rows: list[dict[str, Any]] = []
        offset = 0
        while True:
            page, total = await rbac.list_roles(name=args.name, limit=_PAGE, offset=offset)
            for role in page:
                granted = await rbac.permissions_of_role(role.id)
                rows.append(
                    {
                        **RoleRead.model_validate(role).model_dump(mode="json"),
                        "permissions": [p.name for p in granted.permissions],
                    }
                )
            offset += len(page)
            if not page or offset >= total:
                return rows

    emit(run_in_session(work), as_json=args.json, columns=["name", "id", "is_core", "permissions"])
    return 0


def _cmd_roles_create(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession, settings: Settings) -> dict[str, Any]:
        role = await RbacService(session).create_role(
            RoleWrite(name=args.name, description=args.description)
        )
        return RoleRead.model_validate(role).model_dump(mode="json")

    emit(run_in_session(work), as_json=args.json, columns=_NAMED)
    return 0


def _cmd_roles_grant(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession, settings: Settings) -> dict[str, Any]:
        rbac = RbacService(session)
        granted = await rbac.grant_permission(
            await rbac.role_id_for(args.role), await rbac.permission_id_for(args.permission)
        )
        return granted.model_dump(mode="json")

    result = run_in_session(work)
    if args.json:
        emit(result, as_json=True, columns=[])
    else:
        emit(
            {
                "role": result["role"]["name"],
                "permission": result["permission"]["name"],
                "assigned_at": result["assigned_at"],
            },
            as_json=False,
            columns=["role", "permission", "assigned_at"],
        )
    return 0


def _cmd_roles_assign(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession, settings: Settings) -> dict[str, Any]:
        rbac = RbacService(session)
        role_id = await rbac.role_id_for(args.role)
        if args.client is not None:
            clients = ClientService(session, settings)
            view = await clients.assign_role(await clients.id_for(args.client), role_id)
            return client_read(view).model_dump(mode="json")
        # The operator vouches for the user id: there may be no identity provider to ask.
        await rbac.get_role(role_id)
        await ProfileLookupRepository(session).ensure(args.user)
        return (await rbac.assign_role(args.user, role_id)).model_dump(mode="json")

    result = run_in_session(work)
    if args.json:
        emit(result, as_json=True, columns=[])
    elif args.client is not None:
        emit(
            {
                "client": result["name"],
                "client_id": result["client_id"],
                "roles": [r["name"] for r in result["roles"]],
            },
            as_json=False,
            columns=["client", "client_id", "roles"],
        )
    else:
        emit(
            {"user_id": result["user_id"], "role": result["role"]["name"],
             "assigned_at": result["assigned_at"]},
            as_json=False,
            columns=["user_id", "role", "assigned_at"],
        )  # fmt: skip
    return 0


def _cmd_permissions_list(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession, settings: Settings) -> list[dict[str, Any]]:
        rbac = RbacService(session)
        rows: list[dict[str, Any]] = []
        offset = 0
        while True:
            page, total = await rbac.list_permissions(name=args.name, limit=_PAGE, offset=offset)
            rows += [PermissionRead.model_validate(p).model_dump(mode="json") for p in page]
            offset += len(page)
            if not page or offset >= total:
                return rows

    emit(run_in_session(work), as_json=args.json, columns=["name", "id", "is_core", "description"])
    return 0


def _cmd_permissions_create(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession, settings: Settings) -> dict[str, Any]:
        permission = await RbacService(session).create_permission(
            PermissionWrite(name=args.name, description=args.description)
        )
        return PermissionRead.model_validate(permission).model_dump(mode="json")

    emit(run_in_session(work), as_json=args.json, columns=_NAMED)
    return 0


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
