"""Shared fixtures: a real PostgreSQL with the schema built by Alembic, real Redis when present.

- The server is TEST_DATABASE_URL's when set, the embedded one otherwise.
- Each pytest session gets its own database (created, migrated once, dropped), so parallel
  runs on one server never see each other.
- Each test starts from empty tables (TRUNCATE), then the app's own startup seeds what it seeds.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from auth_service.cli import alembic_config
from auth_service.config import Settings
from auth_service.core.db import SCHEMA, async_database_url, create_engine
from auth_service.main import create_app

pytest_plugins = ["tests.factories"]


def _plain_dsn(url: str) -> str:
    """asyncpg.connect wants postgresql:// without the SQLAlchemy driver suffix."""
    return (
        make_url(async_database_url(url))
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )


@pytest.fixture(scope="session")
def database_server_url() -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield async_database_url(url)
        return
    from auth_service.core.embedded_pg import embedded_postgres

    with (
        tempfile.TemporaryDirectory(prefix="auth-service-pg-") as tmp,
        embedded_postgres(Path(tmp) / "pgdata", delete=True) as embedded_url,
    ):
        yield embedded_url


async def create_database(server_url: str, name: str) -> str:
    conn = await asyncpg.connect(_plain_dsn(server_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(_plain_dsn(server_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def run_alembic(url: str, action: str = "upgrade", revision: str = "head") -> None:
    from alembic import command

    cfg = alembic_config(url)
    fn = command.upgrade if action == "upgrade" else command.downgrade
    await asyncio.to_thread(fn, cfg, revision)


@pytest.fixture(scope="session")
async def database_url(database_server_url: str) -> AsyncIterator[str]:
    name = f"auth_test_{uuid.uuid4().hex[:12]}"
    url = await create_database(database_server_url, name)
    try:
        await run_alembic(url)
        yield url
    finally:
        await drop_database(database_server_url, name)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=2, max_overflow=2)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="session")
async def table_names(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.exec_driver_sql(
            "SELECT tablename FROM pg_tables"
            " WHERE schemaname = $1 AND tablename <> 'alembic_version'",
            (SCHEMA,),
        )
        return [row[0] for row in rows]


@pytest.fixture
async def clean_db(engine: AsyncEngine, table_names: list[str]) -> None:
    if table_names:
        tables = ", ".join(f"{SCHEMA}.{name}" for name in table_names)
        async with engine.begin() as conn:
            await conn.exec_driver_sql(f"TRUNCATE {tables} CASCADE")


@pytest.fixture
async def db(engine: AsyncEngine, clean_db: None) -> AsyncIterator[AsyncSession]:
    """A session for arranging and asserting; commit explicitly to make data visible to the app."""
    async with async_sessionmaker(engine, expire_on_commit=False)() as session:
        yield session


def _redis_available(url: str) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"


def _choose_redis() -> tuple[str | None, str]:
    """REDIS_URL when set; otherwise a Redis answering on the default local port. And why."""
    url = os.environ.get("REDIS_URL")
    if url:
        if _redis_available(url):
            return url, f"Redis: {url} (REDIS_URL)"
        return None, f"Redis: REDIS_URL={url} does not answer; Redis tests skip"
    if _redis_available(LOCAL_REDIS_URL):
        return LOCAL_REDIS_URL, f"Redis: {LOCAL_REDIS_URL} (REDIS_URL unset, found locally)"
    return None, f"Redis: none (REDIS_URL unset, nothing at {LOCAL_REDIS_URL}); Redis tests skip"


_REDIS_CHOICE: tuple[str | None, str] | None = None


def redis_choice() -> tuple[str | None, str]:
    global _REDIS_CHOICE
    if _REDIS_CHOICE is None:
        _REDIS_CHOICE = _choose_redis()
    return _REDIS_CHOICE


def pytest_report_header() -> str:
    """Say which Redis the run uses, at the top of every pytest run."""
    return redis_choice()[1]


@pytest.fixture(scope="session")
def redis_url() -> str | None:
    """REDIS_URL or a local Redis when it answers; with REQUIRE_REDIS=1 none fails the run."""
    url, reason = redis_choice()
    if url:
        return url
    if os.environ.get("REQUIRE_REDIS") == "1":
        pytest.fail(f"REQUIRE_REDIS=1 but {reason}")
    return None


@pytest.fixture
def require_redis(redis_url: str | None) -> str:
    if redis_url is None:
        pytest.skip(
            f"{redis_choice()[1]} (set REDIS_URL; CI sets REQUIRE_REDIS=1 to make this fail)"
        )
    return redis_url


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "logging_level": "WARNING",
        "redis_key_prefix": f"test-{uuid.uuid4().hex[:8]}:",
        "token_issuer": "http://testserver",
        "supabase_url": None,
        "supabase_anon_key": None,
        "supabase_service_role_key": None,
        "supabase_jwt_secret": None,
        "initial_admin_email": None,
        "initial_admin_password": None,
        # argon2id at test strength: the parameters are settings, production keeps OWASP's.
        "password_hash_memory_kib": 1024,
        "password_hash_time_cost": 1,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(database_url: str, redis_url: str | None) -> Settings:
    return make_settings(auth_service_database_url=database_url, redis_url=redis_url)


@pytest.fixture
async def app(settings: Settings, clean_db: None) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
