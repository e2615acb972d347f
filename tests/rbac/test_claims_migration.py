"""The claims migration on a Supabase-shaped database: grants, revokes, and a clean downgrade."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from auth_service.core.embedded_pg import embedded_postgres
from tests.conftest import _plain_dsn, create_database, drop_database, run_alembic

HOOK = "public.custom_access_token_hook(jsonb)"
CLAIMS = "auth_service_data.get_user_rbac_claims(uuid)"
HOOK_TABLES = ("profiles", "user_roles", "roles", "role_permissions", "permissions")

# Roles are cluster-wide: create them idempotently and leave them, since parallel test
# sessions on the same server may be using them.
SUPABASE_ROLES = """
DO $$
DECLARE name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['supabase_auth_admin', 'authenticated', 'anon'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', name);
        END IF;
    END LOOP;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- another session created it between the check and the CREATE
END $$;
"""


@pytest.fixture
async def supabase_db(database_server_url: str) -> AsyncIterator[str]:
    """A fresh database shaped like Supabase's: its roles and an auth.users table."""
    name = f"auth_rbac_{uuid.uuid4().hex[:10]}"
    url = await create_database(database_server_url, name)
    conn = await asyncpg.connect(_plain_dsn(url))
    try:
        await conn.execute(SUPABASE_ROLES)
        await conn.execute("CREATE SCHEMA auth; CREATE TABLE auth.users (id uuid PRIMARY KEY)")
    finally:
        await conn.close()
    try:
        yield url
    finally:
        await drop_database(database_server_url, name)


async def _connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(_plain_dsn(url))


async def test_supabase_auth_admin_gets_exactly_what_the_hook_needs(supabase_db: str) -> None:
    await run_alembic(supabase_db)
    conn = await _connect(supabase_db)
    try:

        async def can(sql: str, *args: str) -> bool:
            return bool(await conn.fetchval(sql, *args))

        fn = "SELECT has_function_privilege($1, $2, 'EXECUTE')"
        assert await can(fn, "supabase_auth_admin", HOOK)
        assert await can(fn, "supabase_auth_admin", CLAIMS)
        for role in ("authenticated", "anon"):
            assert not await can(fn, role, HOOK)
            assert not await can(fn, role, CLAIMS)
        # PUBLIC's default EXECUTE is gone too: a plain new role gets nothing.
        public_grants = await conn.fetchval(
            "SELECT count(*) FROM pg_proc p, aclexplode(p.proacl) a"
            " WHERE p.oid = $1::regprocedure AND a.grantee = 0",
            HOOK,
        )
        assert public_grants == 0
        assert await can(
            "SELECT has_schema_privilege($1, 'auth_service_data', 'USAGE')", "supabase_auth_admin"
        )
        for table in HOOK_TABLES:
            assert await can(
                "SELECT has_table_privilege($1, $2, 'SELECT')",
                "supabase_auth_admin",
                f"auth_service_data.{table}",
            )
            assert not await can(
                "SELECT has_table_privilege($1, $2, 'INSERT')",
                "supabase_auth_admin",
                f"auth_service_data.{table}",
            )
        # The Supabase-only foreign keys of migration 0001 are there as well.
        fks = await conn.fetch(
            "SELECT conname FROM pg_constraint WHERE contype = 'f'"
            " AND confrelid = to_regclass('auth.users') ORDER BY conname"
        )
        assert [r["conname"] for r in fks] == [
            "fk_profiles_user_id_users",
            "fk_user_roles_user_id_users",
        ]
    finally:
        await conn.close()


async def test_the_hook_runs_as_supabase_auth_admin(supabase_db: str) -> None:
    await run_alembic(supabase_db)
    user_id = uuid.uuid4()
    conn = await _connect(supabase_db)
    try:
        await conn.execute("INSERT INTO auth.users (id) VALUES ($1)", user_id)
        await conn.execute("INSERT INTO auth_service_data.profiles (user_id) VALUES ($1)", user_id)
        role_id = await conn.fetchval(
            "INSERT INTO auth_service_data.roles (name) VALUES ('ops') RETURNING id"
        )
        perm_id = await conn.fetchval(
            "INSERT INTO auth_service_data.permissions (name) VALUES ('ops:deploy') RETURNING id"
        )
        await conn.execute(
            "INSERT INTO auth_service_data.role_permissions (role_id, permission_id)"
            " VALUES ($1, $2)",
            role_id,
            perm_id,
        )
        await conn.execute(
            "INSERT INTO auth_service_data.user_roles (user_id, role_id) VALUES ($1, $2)",
            user_id,
            role_id,
        )
        event = {"user_id": str(user_id), "claims": {"sub": str(user_id), "role": "authenticated"}}
        async with conn.transaction():
            await conn.execute("SET LOCAL ROLE supabase_auth_admin")
            result = json.loads(
                await conn.fetchval(
                    "SELECT public.custom_access_token_hook($1::jsonb)::text", json.dumps(event)
                )
            )
        assert result == {
            "claims": {
                "sub": str(user_id),
                "role": "authenticated",
                "roles": ["ops"],
                "permissions": ["ops:deploy"],
            }
        }
        async with conn.transaction():
            await conn.execute("SET LOCAL ROLE authenticated")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetchval("SELECT public.custom_access_token_hook('{}'::jsonb)")
    finally:
        await conn.close()


async def test_downgrade_removes_functions_and_grants(supabase_db: str) -> None:
    await run_alembic(supabase_db)
    await run_alembic(supabase_db, "downgrade", "20261126_0002")
    conn = await _connect(supabase_db)
    try:
        assert await conn.fetchval("SELECT to_regprocedure($1)", HOOK) is None
        assert await conn.fetchval("SELECT to_regprocedure($1)", CLAIMS) is None
        assert not await conn.fetchval(
            "SELECT has_schema_privilege('supabase_auth_admin', 'auth_service_data', 'USAGE')"
        )
        for table in HOOK_TABLES:
            assert not await conn.fetchval(
                "SELECT has_table_privilege('supabase_auth_admin', $1, 'SELECT')",
                f"auth_service_data.{table}",
            )
        checks = await conn.fetchval(
            "SELECT count(*) FROM pg_constraint WHERE conname = 'ck_permissions_name_format'"
        )
        assert checks == 0
    finally:
        await conn.close()
    # And up again, grants included.
    await run_alembic(supabase_db)
    conn = await _connect(supabase_db)
    try:
        assert await conn.fetchval(
            "SELECT has_function_privilege('supabase_auth_admin', $1, 'EXECUTE')", HOOK
        )
    finally:
        await conn.close()


async def test_permission_names_are_checked_by_the_database_too(supabase_db: str) -> None:
    await run_alembic(supabase_db)
    conn = await _connect(supabase_db)
    try:
        for bad in ("Reports:read", "reports", "reports:", ":read", "a:b:c", "reports:read "):
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(
                    "INSERT INTO auth_service_data.permissions (name) VALUES ($1)", bad
                )
        await conn.execute(
            "INSERT INTO auth_service_data.permissions (name) VALUES ('billing.invoices:read')"
        )
    finally:
        await conn.close()


async def test_without_supabase_roles_the_grants_are_skipped_on_embedded_postgres(
    tmp_path: Path,
) -> None:
    """Roles are cluster-wide and the shared test server may have Supabase's by now, so the
    skip path runs on a private embedded server (the `make run` default), which has none."""
    with embedded_postgres(tmp_path / "pgdata", delete=True) as url:
        conn = await _connect(url)
        try:
            supabase_roles = await conn.fetchval(
                "SELECT count(*) FROM pg_roles"
                " WHERE rolname IN ('supabase_auth_admin', 'authenticated', 'anon')"
            )
            assert supabase_roles == 0
        finally:
            await conn.close()

        await run_alembic(url)
        conn = await _connect(url)
        try:
            event = {"user_id": str(uuid.uuid4()), "claims": {"role": "authenticated"}}
            result = json.loads(
                await conn.fetchval(
                    "SELECT public.custom_access_token_hook($1::jsonb)::text", json.dumps(event)
                )
            )
            assert result == {"claims": {"role": "authenticated", "roles": [], "permissions": []}}
            public_grants = await conn.fetchval(
                "SELECT count(*) FROM pg_proc p, aclexplode(p.proacl) a"
                " WHERE p.oid = $1::regprocedure AND a.grantee = 0",
                HOOK,
            )
            assert public_grants == 0
        finally:
            await conn.close()
        await run_alembic(url, "downgrade", "20261126_0002")
        conn = await _connect(url)
        try:
            assert await conn.fetchval("SELECT to_regprocedure($1)", HOOK) is None
        finally:
            await conn.close()
