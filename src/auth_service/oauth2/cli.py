"""`auth-service keys ...`: signing-key rotation and emergency removal."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from auth_service import audit
from auth_service.audit import AuditAction, AuditEvent, Target
from auth_service.config import Settings
from auth_service.core.actor import OPERATOR
from auth_service.core.db import create_engine, create_session_factory
from auth_service.oauth2.keys import KeyEncryptor, ensure_active_key, rotate_keys
from auth_service.oauth2.repository import SigningKeyRepository

T = TypeVar("T")


def register(sub: Any) -> None:  # argparse's _SubParsersAction is private API
    """Add this domain's subcommands to the `auth-service` parser."""
    keys = sub.add_parser("keys", help="manage token signing keys")
    commands = keys.add_subparsers(dest="keys_command", required=True)
    rotate = commands.add_parser(
        "rotate",
        help="add a new active key; replicas use it within SIGNING_KEYS_REFRESH_SECONDS",
    )
    rotate.set_defaults(func=_cmd_rotate)
    listing = commands.add_parser("list", help="list signing keys (public data only)")
    listing.set_defaults(func=_cmd_list)
    remove = commands.add_parser(
        "remove", help="delete a key now (compromise): tokens it signed stop verifying"
    )
    remove.add_argument("kid")
    remove.set_defaults(func=_cmd_remove)


def _run(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def main() -> T:
        if not settings.auth_service_database_url:
            raise ValueError("AUTH_SERVICE_DATABASE_URL is not set")
        engine = create_engine(settings.auth_service_database_url, pool_size=1, max_overflow=0)
        try:
            async with create_session_factory(engine).begin() as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _cmd_rotate(args: argparse.Namespace) -> int:
    settings = Settings()
    encryptor = KeyEncryptor(settings.signing_key_encryption_key.get_secret_value())

    async def work(session: AsyncSession) -> str:
        kid = await rotate_keys(session, encryptor, settings.access_token_ttl_seconds)
        await audit.record(
            session, AuditEvent(AuditAction.KEY_ROTATE, OPERATOR, Target("signing_key", kid))
        )
        return kid

    print(json.dumps({"kid": _run(settings, work)}))
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        rows = await SigningKeyRepository(session).all_newest_first()
        return [
            {
                "kid": r.kid,
                "algorithm": r.algorithm,
                "created_at": r.created_at.isoformat(),
                "retired_at": r.retired_at.isoformat() if r.retired_at else None,
            }
            for r in rows
        ]

    print(json.dumps(_run(Settings(), work)))
    return 0


def _cmd_remove(args: argparse.Namespace) -> int:
    settings = Settings()
    encryptor = KeyEncryptor(settings.signing_key_encryption_key.get_secret_value())

    async def work(session: AsyncSession) -> bool:
        removed = await SigningKeyRepository(session).delete(args.kid)
        if removed:
            target = Target("signing_key", args.kid)
            await audit.record(session, AuditEvent(AuditAction.KEY_REMOVE, OPERATOR, target))
        # Removing the active key must not leave replicas without one to sign with.
        await ensure_active_key(session, encryptor)
        return removed

    removed = _run(settings, work)
    print(json.dumps({"kid": args.kid, "removed": removed}))
    return 0 if removed else 1
