"""Migrations both ways, drift against the models, and the Supabase-only foreign keys."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from auth_service.core.db import SCHEMA
from auth_service.core.migrations import include_name, include_object
from auth_service.models import Base
from tests.conftest import _plain_dsn, create_database, drop_database, run_alembic

OUR_TABLES = {
    "profiles",
    "app_clients",
    "roles",
    "permissions",
    "user_roles",
    "app_client_roles",
    "role_permissions",
}


@pytest.fixture
async def scratch_db(database_server_url: str) -> AsyncIterator[str]:
    name = f"auth_mig_{uuid.uuid4().hex[:10]}"
    url = await create_database(database_server_url, name)
    try:
        yield url
    finally:
        await drop_database(database_server_url, name)


async def _fetch(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(_plain_dsn(url))
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def _tables(url: str) -> set[str]:
    rows = await _fetch(
        url,
        "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename <> 'alembic_version'",
        SCHEMA,
    )
    return {row["tablename"] for row in rows}


async def _auth_fks(url: str) -> set[str]:
    rows = await _fetch(
        url,
        """
        SELECT c.conname FROM pg_constraint c
        JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE c.contype = 'f' AND n.nspname = $1
          AND c.confrelid = to_regclass('auth.users')
        """,
        SCHEMA,
    )
    return {row["conname"] for row in rows}


async def test_upgrade_downgrade_upgrade(scratch_db: str) -> None:
    await run_alembic(scratch_db)
    assert await _tables(scratch_db) >= OUR_TABLES
    await run_alembic(scratch_db, "downgrade", "base")
    assert await _tables(scratch_db) == set()
    await run_alembic(scratch_db)
    assert await _tables(scratch_db) >= OUR_TABLES


async def test_every_table_lives_in_our_schema(scratch_db: str) -> None:
    await run_alembic(scratch_db)
    rows = await _fetch(
        scratch_db,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
    )
    assert rows == []


async def test_models_and_migrations_agree(scratch_db: str) -> None:
    await run_alembic(scratch_db)
    engine = create_async_engine(scratch_db, poolclass=NullPool)

    def diff(sync_conn: Any) -> list[Any]:
        context = MigrationContext.configure(
            sync_conn,
            opts={
                "include_schemas": True,
                "include_name": include_name,
                "include_object": include_object,
                "compare_type": True,
                "version_table_schema": SCHEMA,
            },
        )
        return list(compare_metadata(context, Base.metadata))

    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(diff)
    finally:
        await engine.dispose()
    assert differences == []


async def test_no_auth_users_means_no_foreign_keys_to_it(scratch_db: str) -> None:
    await run_alembic(scratch_db)
    assert await _auth_fks(scratch_db) == set()


async def test_auth_users_gets_cascading_foreign_keys(scratch_db: str) -> None:
    conn = await asyncpg.connect(_plain_dsn(scratch_db))
    try:
        await conn.execute("CREATE SCHEMA auth; CREATE TABLE auth.users (id uuid PRIMARY KEY)")
    finally:
        await conn.close()
    await run_alembic(scratch_db)
    assert await _auth_fks(scratch_db) == {
        "fk_profiles_user_id_users",
        "fk_user_roles_user_id_users",
    }
    user_id = uuid.uuid4()
    conn = await asyncpg.connect(_plain_dsn(scratch_db))
    try:
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute(f"INSERT INTO {SCHEMA}.profiles (user_id) VALUES ($1)", user_id)
        await conn.execute("INSERT INTO auth.users (id) VALUES ($1)", user_id)
        await conn.execute(f"INSERT INTO {SCHEMA}.profiles (user_id) VALUES ($1)", user_id)
        await conn.execute("DELETE FROM auth.users WHERE id = $1", user_id)
        remaining = await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.profiles")
    finally:
        await conn.close()
    assert remaining == 0
    # And the downgrade still works on a Supabase-shaped database.
    await run_alembic(scratch_db, "downgrade", "base")
    assert await _tables(scratch_db) == set()
