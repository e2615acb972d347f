"""`auth-service users ...` and `auth-service mail list` on the local identity provider."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import bcrypt
import httpx
import pytest

from auth_service.cli import main
from tests.conftest import _plain_dsn, create_database, drop_database
from tests.factories import login_user


async def run_cli(
    monkeypatch: pytest.MonkeyPatch, database_url: str, *argv: str
) -> tuple[int, list[Any], str]:
    """The console entry point in a thread: exit code, JSON lines, stderr."""
    monkeypatch.setenv("AUTH_SERVICE_DATABASE_URL", database_url)
    monkeypatch.setenv("LOGGING_LEVEL", "WARNING")
    monkeypatch.setenv("PASSWORD_HASH_MEMORY_KIB", "1024")
    monkeypatch.setenv("PASSWORD_HASH_TIME_COST", "1")
    out, err = io.StringIO(), io.StringIO()

    def call() -> int:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return main(list(argv))

    code = await asyncio.to_thread(call)
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    return code, lines, err.getvalue()


async def test_users_create_list_set_password_delete(
    monkeypatch: pytest.MonkeyPatch, database_url: str, client: httpx.AsyncClient
) -> None:
    code, [created], _ = await run_cli(
        monkeypatch, database_url, "users", "create", "Ops@Example.com", "--password", "Ops-pass-12"
    )
    assert code == 0
    assert created["email"] == "ops@example.com"
    await login_user(client, "ops@example.com", "Ops-pass-12")

    code, listed, _ = await run_cli(monkeypatch, database_url, "users", "list")
    assert [u["email"] for u in listed] == ["ops@example.com"]

    code, _, err = await run_cli(
        monkeypatch, database_url, "users", "create", "ops@example.com", "--password", "Ops-pass-12"
    )
    assert code == 1
    assert "user_already_exists" in err

    code, [updated], _ = await run_cli(
        monkeypatch,
        database_url,
        "users",
        "set-password",
        "ops@example.com",
        "--password",
        "Other-pass-34",
    )
    assert updated["updated"] is True
    await login_user(client, "ops@example.com", "Other-pass-34")

    code, [deleted], _ = await run_cli(monkeypatch, database_url, "users", "delete", created["id"])
    assert deleted == {"id": created["id"], "deleted": True}
    code, listed, _ = await run_cli(monkeypatch, database_url, "users", "list")
    assert listed == []


async def test_mail_list_shows_the_newest_message(
    monkeypatch: pytest.MonkeyPatch, database_url: str, client: httpx.AsyncClient
) -> None:
    await client.post(
        "/auth/users/register", json={"email": "m@example.com", "password": "Mail-pass-12"}
    )
    await client.post("/auth/users/password/reset", json={"email": "m@example.com"})
    code, mails, _ = await run_cli(
        monkeypatch, database_url, "mail", "list", "--to", "m@example.com"
    )
    assert code == 0
    assert mails[0]["subject"] == "Reset your password"
    assert "token_hash=" in mails[0]["link"]


@pytest.fixture
async def supabase_db(database_server_url: str) -> AsyncIterator[str]:
    """A scratch database shaped like Supabase's: an `auth.users` table with two users."""
    name = f"supabase_{uuid.uuid4().hex[:10]}"
    url = await create_database(database_server_url, name)
    conn = await asyncpg.connect(_plain_dsn(url))
    try:
        await conn.execute(
            """
            CREATE SCHEMA auth;
            CREATE TABLE auth.users (
                id uuid PRIMARY KEY, email text, encrypted_password text,
                email_confirmed_at timestamptz, last_sign_in_at timestamptz,
                banned_until timestamptz, raw_user_meta_data jsonb, raw_app_meta_data jsonb,
                created_at timestamptz DEFAULT now()
            );
            """
        )
        legacy = bcrypt.hashpw(b"Imported-pass-1", bcrypt.gensalt(rounds=4)).decode()
        await conn.execute(
            "INSERT INTO auth.users VALUES ($1, $2, $3, now(), NULL, NULL, $4, $5, now())",
            uuid.UUID("11111111-1111-4111-8111-111111111111"),
            "Imported@Example.com",
            "$2a$" + legacy[4:],
            json.dumps({"name": "Imp"}),
            json.dumps({"provider": "email", "providers": ["email"]}),
        )
        await conn.execute(
            "INSERT INTO auth.users (id, email, encrypted_password) VALUES ($1, $2, '')",
            uuid.UUID("22222222-2222-4222-8222-222222222222"),
            "unconfirmed@example.com",
        )
    finally:
        await conn.close()
    try:
        yield _plain_dsn(url)
    finally:
        await drop_database(database_server_url, name)


async def test_import_from_supabase_keeps_ids_and_passwords_and_is_idempotent(
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    supabase_db: str,
    client: httpx.AsyncClient,
) -> None:
    code, [first], err = await run_cli(
        monkeypatch, database_url, "users", "import", "--from-url", supabase_db
    )
    assert code == 0, err
    assert first == {"imported": 2, "updated": 0, "skipped": 0}
    code, [second], _ = await run_cli(
        monkeypatch, database_url, "users", "import", "--from-url", supabase_db
    )
    assert second == {"imported": 0, "updated": 2, "skipped": 0}
    session = await login_user(client, "imported@example.com", "Imported-pass-1")
    assert session["user"]["id"] == "11111111-1111-4111-8111-111111111111"
    unconfirmed = await client.post(
        "/auth/users/login", json={"email": "unconfirmed@example.com", "password": "x"}
    )
    assert unconfirmed.status_code == 401
