"""`auth-service clients ...`: the admin API's client work from a shell, without any token.

Every command goes through `ClientService`, as the admin endpoints do, and prints the API's
own JSON with `--json` (a table otherwise). Clients are addressed by id or by name.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.cli_support import add_json_flag, emit, run_in_session
from auth_service.clients.endpoints import client_read
from auth_service.clients.service import ClientService
from auth_service.config import Settings

_COLUMNS = ["name", "client_id", "is_active", "roles", "allowed_audiences", "created_at"]
_DETAIL = [
    "name",
    "client_id",
    "description",
    "is_active",
    "roles",
    "allowed_audiences",
    "secret_rotation_grace_until",
    "created_at",
    "updated_at",
]


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

    listing = commands.add_parser("list", help="list clients with their roles")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--offset", type=int, default=0)
    add_json_flag(listing)
    listing.set_defaults(func=_cmd_list)

    for name, func, text in (
        ("show", _cmd_show, "one client (never its secret)"),
        (
            "rotate-secret",
            _cmd_rotate,
            "new secret, printed once; the old one works for CLIENT_SECRET_ROTATION_GRACE_SECONDS",
        ),
        ("deactivate", _cmd_deactivate, "refuse new tokens; its tokens stop working at once"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("client", metavar="CLIENT", help="client name or id")
        add_json_flag(command)
        command.set_defaults(func=func)


def _table_row(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "roles": [role["name"] for role in row["roles"]]}


def _show(data: dict[str, Any] | list[dict[str, Any]], as_json: bool, columns: list[str]) -> None:
    if as_json:
        emit(data, as_json=True, columns=columns)
    elif isinstance(data, list):
        emit([_table_row(r) for r in data], as_json=False, columns=columns)
    else:
        emit(_table_row(data), as_json=False, columns=columns)


def _jwks(args: argparse.Namespace) -> dict[str, Any] | None:
    if not args.jwks_file:
        return None
    with open(args.jwks_file, encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


def _cmd_create(args: argparse.Namespace) -> int:
    try:
        jwks = _jwks(args)
    except (OSError, ValueError) as exc:  # unreadable or malformed --jwks-file
        print(f"auth-service: cannot read --jwks-file: {exc}", file=sys.stderr)
        return 1
    method = args.auth_method
    if (jwks is not None or args.jwks_uri) and method == "client_secret_basic":
        method = "private_key_jwt"  # keys given: that is what they are for

    async def work(session: AsyncSession, settings: Settings) -> dict[str, str | None]:
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

    emit(run_in_session(work), as_json=True, columns=[])
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession, settings: Settings) -> list[dict[str, Any]]:
        views, _ = await ClientService(session, settings).page(limit=args.limit, offset=args.offset)
        return [client_read(v).model_dump(mode="json") for v in views]

    _show(run_in_session(work), args.json, _COLUMNS)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession, settings: Settings) -> dict[str, Any]:
        service = ClientService(session, settings)
        view = await service.get(await service.id_for(args.client))
        return client_read(view).model_dump(mode="json")

    _show(run_in_session(work), args.json, _DETAIL)
    return 0


def _cmd_rotate(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession, settings: Settings) -> dict[str, Any]:
        service = ClientService(session, settings)
        client_id = await service.id_for(args.client)
        secret, expires = await service.rotate_secret(client_id)
        return {
            "client_id": str(client_id),
            "client_secret": secret,
            "previous_secret_expires_at": expires.isoformat(),
        }

    emit(
        run_in_session(work),
        as_json=args.json,
        columns=["client_id", "client_secret", "previous_secret_expires_at"],
    )
    return 0


def _cmd_deactivate(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession, settings: Settings) -> dict[str, Any]:
        service = ClientService(session, settings)
        current = (await service.get(await service.id_for(args.client))).client
        # The same full replacement as PUT /auth/admin/clients/{id}, with is_active false.
        view = await service.update(
            current.id,
            name=current.client_name,
            description=current.description,
            allowed_audiences=list(current.allowed_audiences),
            is_active=False,
        )
        return client_read(view).model_dump(mode="json")

    _show(run_in_session(work), args.json, _DETAIL)
    return 0
