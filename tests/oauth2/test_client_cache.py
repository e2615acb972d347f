"""The token endpoint's client cache: never stale for writes in this process, cleared by
NOTIFY for writes elsewhere, bypassed while the LISTEN connection is down."""

from __future__ import annotations

import asyncio
import base64

import asyncpg
import httpx
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.clients.models import AppClient
from auth_service.oauth2.client_cache import CHANNEL, ClientCache
from auth_service.oauth2.lifecycle import asyncpg_dsn
from tests.factories import create_client

GRANT = {"grant_type": "client_credentials"}


def basic(client_id: object, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def status(client: httpx.AsyncClient, client_id: object, secret: str) -> int:
    response = await client.post("/auth/token", data=GRANT, headers=basic(client_id, secret))
    return response.status_code


async def wait_until(predicate: object, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


def cache_of(app: FastAPI) -> ClientCache:
    cache: ClientCache = app.state.oauth2.service.cache
    return cache


async def test_credentials_are_served_from_the_cache_after_the_first_grant(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    client_id, secret = await create_client(app)
    cache = cache_of(app)
    assert cache.listening
    # The client's own creation is notified too; let that land before the first grant.
    await app.state.oauth2.listener.barrier()
    assert await status(client, client_id, secret) == 200
    assert client_id in cache._entries


async def test_a_change_made_by_another_process_is_seen_through_notify(
    app: FastAPI, client: httpx.AsyncClient, database_url: str
) -> None:
    client_id, secret = await create_client(app)
    await app.state.oauth2.listener.barrier()
    assert await status(client, client_id, secret) == 200
    cache = cache_of(app)
    assert client_id in cache._entries  # now cached
    generation = cache.generation

    # A plain asyncpg connection: no SQLAlchemy, so only the database trigger can tell us.
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute(
            "UPDATE auth_service_data.app_clients SET is_active = false WHERE id = $1", client_id
        )
    finally:
        await conn.close()

    await wait_until(lambda: cache.generation > generation)
    assert await status(client, client_id, secret) == 401


async def test_the_cache_is_bypassed_while_the_listener_is_down_and_comes_back(
    app: FastAPI, client: httpx.AsyncClient, database_url: str
) -> None:
    client_id, secret = await create_client(app)
    cache = cache_of(app)
    listener = app.state.oauth2.listener
    listener.retry_seconds = 0.2
    backend_pid = listener._conn.get_server_pid()

    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute("SELECT pg_terminate_backend($1)", backend_pid)
        await wait_until(lambda: not cache.listening, seconds=2)
        # While nothing tells us about changes, every request reads the database.
        assert await status(client, client_id, secret) == 200
        assert client_id not in cache._entries
        await conn.execute(
            "UPDATE auth_service_data.app_clients SET is_active = false WHERE id = $1", client_id
        )
        assert await status(client, client_id, secret) == 401
    finally:
        await conn.close()
    await wait_until(lambda: cache.listening, seconds=5)


async def test_a_commit_in_this_process_clears_the_cache_without_waiting_for_notify(
    app: FastAPI, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    client_id, secret = await create_client(app)
    listener = app.state.oauth2.listener
    await listener.barrier()
    assert await status(client, client_id, secret) == 200
    assert client_id in cache_of(app)._entries  # now cached
    # Deaf to notifications from here on (but still "listening"): only the local hook can help.
    await listener._conn.remove_listener(CHANNEL, listener._notified)
    assert cache_of(app).listening

    await db.execute(update(AppClient).where(AppClient.id == client_id).values(is_active=False))
    await db.commit()
    assert await status(client, client_id, secret) == 401
