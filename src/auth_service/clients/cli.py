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
    create.add_argument(
        "--auth-method",
        default="client_secret_basic",
        choices=[
            "client_secret_basic",
            "client_secret_post",
            "client_secret_jwt",
            "private_key_jwt",
        ],
        help="token_endpoint_auth_method (private_key_jwt needs --jwks-file or --jwks-uri)",
    )
    keys = create.add_mutually_exclusive_group()
    keys.add_argument("--jwks-file", help="JSON file with the client's public JWK Set")
    keys.add_argument("--jwks-uri", help="URL of the client's public JWK Set")
    create.add_argument(
        "--dpop", action="store_true", help="dpop_bound_access_tokens: require DPoP proofs"
    )
    create.set_defaults(func=_cmd_create)


def _jwks(args: argparse.Namespace) -> dict[str, Any] | None:
    if not args.jwks_file:
        return None
    with open(args.jwks_file, encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


async def _create(settings: Settings, args: argparse.Namespace) -> dict[str, str | None]:
    if not settings.auth_service_database_url:
        raise ValueError("AUTH_SERVICE_DATABASE_URL is not set")
    jwks = args.jwks
    method = args.auth_method
    if (jwks is not None or args.jwks_uri) and method == "client_secret_basic":
        method = "private_key_jwt"  # keys given: that is what they are for
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
                token_endpoint_auth_method=method,
                jwks=jwks,
                jwks_uri=args.jwks_uri,
                dpop_bound_access_tokens=args.dpop,
            )
        return {"client_id": str(view.client.id), "client_secret": secret}
    finally:
        await engine.dispose()


def _cmd_create(args: argparse.Namespace) -> int:
    try:
        args.jwks = _jwks(args)
    except (OSError, ValueError) as exc:  # unreadable or malformed --jwks-file
        print(f"auth-service: cannot read --jwks-file: {exc}", file=sys.stderr)
        return 1
    try:
        result = asyncio.run(_create(Settings(), args))
    except AppError as exc:
        print(f"auth-service: {exc.message} ({exc.code})", file=sys.stderr)
        return 1

    print(json.dumps(result))
    return 0
