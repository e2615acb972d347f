"""`auth-service clients ...`: create a client without any human login (operator bootstrap)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from auth_service.clients.service import ClientService
from auth_service.config import Settings
from auth_service.core.db import create_engine, create_session_factory
from auth_service.core.errors import AppError
from auth_service.rbac.bootstrap import seed_core_rbac


def register(sub: Any) -> None:  # argparse's _SubParsersAction is private API
    """Add this domain's subcommands to the `auth-service` parser."""
    clients = sub.add_parser("clients", help="manage app clients")
    commands = clients.add_subparsers(dest="clients_command", required=True)
    create = commands.add_parser(
        "create", help='create a client; prints {"client_id": ..., "client_secret": ...}'
    )
    create.add_argument("--name", required=True)
    create.add_argument("--role", action="append", default=[], help="role name; repeat for several")
    create.add_argument(
        "--audience", action="append", default=[], help="allowed audience; repeatable"
    )
    create.add_argument("--description")
    create.set_defaults(func=_cmd_create)


async def _create(settings: Settings, args: argparse.Namespace) -> dict[str, str]:
    if not settings.auth_service_database_url:
        raise ValueError("AUTH_SERVICE_DATABASE_URL is not set")
    engine = create_engine(settings.auth_service_database_url, pool_size=1, max_overflow=0)
    try:
        async with create_session_factory(engine).begin() as session:
            # Core roles exist even if the service has never started against this database.
            await seed_core_rbac(session)
            view, secret = await ClientService(session, settings).create(
                name=args.name,
                description=args.description,
                role_names=args.role,
                allowed_audiences=args.audience,
            )
        return {"client_id": str(view.client.id), "client_secret": secret}
    finally:
        await engine.dispose()


def _cmd_create(args: argparse.Namespace) -> int:
    try:
        result = asyncio.run(_create(Settings(), args))
    except AppError as exc:
        print(f"auth-service: {exc.message} ({exc.code})", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0
