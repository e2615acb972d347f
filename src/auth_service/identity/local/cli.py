"""Operator commands of the local identity provider: `users ...` and `mail list`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs published
from sqlalchemy.dialects.postgresql import insert

from auth_service.config import Settings
from auth_service.core.db import create_engine, create_session_factory
from auth_service.core.errors import AppError
from auth_service.core.kv import MemoryStore
from auth_service.identity.local.adapter import LocalIdentityProvider, normalize_email
from auth_service.identity.local.email import email_sender
from auth_service.identity.local.models import LocalUser
from auth_service.identity.local.repository import LocalIdentityRepository
from auth_service.oauth2.keys import KeyManager

# The columns of Supabase's auth.users we carry over (GoTrue stores bcrypt in encrypted_password).
_IMPORT_QUERY = """
SELECT id, lower(email) AS email, encrypted_password, email_confirmed_at, last_sign_in_at,
       banned_until, raw_user_meta_data, raw_app_meta_data, created_at
FROM auth.users
WHERE email IS NOT NULL AND email <> ''
ORDER BY created_at, id
"""


def register(sub: Any) -> None:  # argparse's _SubParsersAction is private API
    users = sub.add_parser("users", help="human users of the local identity provider")
    commands = users.add_subparsers(dest="users_command", required=True)
    create = commands.add_parser("create", help="create a confirmed user")
    create.add_argument("email")
    create.add_argument("--password", help="prompted for when omitted")
    create.set_defaults(func=_cmd_create)
    listing = commands.add_parser("list", help="list users (JSON lines)")
    listing.set_defaults(func=_cmd_list)
    delete = commands.add_parser("delete", help="delete a user and our rows about them")
    delete.add_argument("user_id", type=uuid.UUID)
    delete.set_defaults(func=_cmd_delete)
    setpw = commands.add_parser("set-password", help="set a password; ends every session")
    setpw.add_argument("email")
    setpw.add_argument("--password", help="prompted for when omitted")
    setpw.set_defaults(func=_cmd_set_password)
    imp = commands.add_parser("import", help="import users (and bcrypt hashes) from Supabase")
    imp.add_argument("--from-url", required=True, help="postgresql://... of the Supabase database")
    imp.set_defaults(func=_cmd_import)

    mail = sub.add_parser("mail", help="the development mailbox")
    mail_commands = mail.add_subparsers(dest="mail_command", required=True)
    mail_list = mail_commands.add_parser("list", help="newest messages first (JSON lines)")
    mail_list.add_argument("--to", help="only messages to this address")
    mail_list.add_argument("--limit", type=int, default=20)
    mail_list.set_defaults(func=_cmd_mail_list)


@asynccontextmanager
async def _provider(settings: Settings) -> AsyncIterator[LocalIdentityProvider]:
    if not settings.auth_service_database_url:
        raise ValueError("AUTH_SERVICE_DATABASE_URL is not set")
    engine = create_engine(settings.auth_service_database_url, pool_size=1, max_overflow=1)
    factory = create_session_factory(engine)
    try:
        # Admin operations never sign tokens: the key manager is never started.
        yield LocalIdentityProvider(
            session_factory=factory,
            keys=KeyManager(factory, settings),
            settings=settings,
            kv=MemoryStore(),
            sender=email_sender(settings, factory),
        )
    finally:
        await engine.dispose()


def _password(given: str | None) -> str:
    return given if given is not None else getpass.getpass("Password: ")


def _run(coro: Any) -> int:
    try:
        result = asyncio.run(coro)
    except AppError as exc:
        print(f"auth-service: {exc.message} ({exc.code})", file=sys.stderr)
        return 1
    for line in result if isinstance(result, list) else [result]:
        print(json.dumps(line, default=str))
    return 0


def _cmd_create(args: argparse.Namespace) -> int:
    async def run() -> dict[str, Any]:
        async with _provider(Settings()) as provider:
            user = await provider.admin_create_user(args.email, _password(args.password))
        return {"id": str(user.id), "email": user.email}

    return _run(run())


def _cmd_list(args: argparse.Namespace) -> int:
    async def run() -> list[dict[str, Any]]:
        async with _provider(Settings()) as provider, provider.session_factory() as session:
            users = await LocalIdentityRepository(session).list_users()
            return [
                {
                    "id": str(u.id),
                    "email": u.email,
                    "email_confirmed_at": u.email_confirmed_at,
                    "last_sign_in_at": u.last_sign_in_at,
                    "created_at": u.created_at,
                }
                for u in users
            ]

    return _run(run())


def _cmd_delete(args: argparse.Namespace) -> int:
    async def run() -> dict[str, Any]:
        async with _provider(Settings()) as provider:
            found = await provider.admin_get_user(args.user_id)
            await provider.admin_delete_user(args.user_id)
        return {"id": str(args.user_id), "deleted": found is not None}

    return _run(run())


def _cmd_set_password(args: argparse.Namespace) -> int:
    async def run() -> dict[str, Any]:
        async with _provider(Settings()) as provider:
            async with provider.session_factory() as session:
                user = await LocalIdentityRepository(session).user_by_email(
                    normalize_email(args.email)
                )
            if user is None:
                return {"email": args.email, "updated": False}
            await provider.admin_set_password(user.id, _password(args.password))
        return {"email": args.email, "updated": True}

    return _run(run())


async def import_users(settings: Settings, source_url: str) -> dict[str, int]:
    """Copy Supabase users (ids, emails, confirmation, bcrypt hashes, metadata); idempotent."""
    source = await asyncpg.connect(source_url)
    try:
        rows = await source.fetch(_IMPORT_QUERY)
    finally:
        await source.close()
    counts = {"imported": 0, "updated": 0, "skipped": 0}
    async with _provider(settings) as provider, provider.session_factory.begin() as session:
        repo = LocalIdentityRepository(session)
        for row in rows:
            same_email = await repo.user_by_email(row["email"])
            if same_email is not None and same_email.id != row["id"]:
                counts["skipped"] += 1  # a different local account owns this address
                continue
            values = {
                "id": row["id"],
                "email": row["email"],
                "encrypted_password": row["encrypted_password"] or None,
                "email_confirmed_at": row["email_confirmed_at"],
                "last_sign_in_at": row["last_sign_in_at"],
                "banned_until": row["banned_until"],
                "user_metadata": _json(row["raw_user_meta_data"]),
                "app_metadata": _json(row["raw_app_meta_data"]),
            }
            if row["created_at"] is not None:
                values["created_at"] = row["created_at"]
            statement = insert(LocalUser).values(**values)
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[LocalUser.id],
                    set_={k: statement.excluded[k] for k in values if k != "id"},
                )
            )
            counts["updated" if same_email is not None else "imported"] += 1
    return counts


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return dict(value or {})


def _cmd_import(args: argparse.Namespace) -> int:
    return _run(import_users(Settings(), args.from_url))


def _cmd_mail_list(args: argparse.Namespace) -> int:
    async def run() -> list[dict[str, Any]]:
        async with _provider(Settings()) as provider, provider.session_factory() as session:
            rows = await LocalIdentityRepository(session).mailbox(
                normalize_email(args.to) if args.to else None, args.limit
            )
            return [
                {
                    "id": r.id,
                    "to": r.to_address,
                    "subject": r.subject,
                    "created_at": r.created_at,
                    "link": r.meta.get("link"),
                    "token": r.meta.get("token"),
                }
                for r in rows
            ]

    return _run(run())
