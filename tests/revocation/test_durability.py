"""A revocation and a logout survive a Redis FLUSHALL and a Redis restart (our own server)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.revocation.models import Revocation
from tests.conftest import make_settings
from tests.factories import (
    client_token,
    create_client,
    login_user,
    register_user,
    supabase_overrides,
)
from tests.support.apps import asgi_client, running_app
from tests.support.gotrue import GoTrueStandIn
from tests.support.redis_server import RedisServer, redis_server


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
async def durable_app(
    database_url: str, clean_db: None, own_redis: RedisServer, gotrue: GoTrueStandIn
) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        auth_service_database_url=database_url,
        redis_url=own_redis.url,
        **supabase_overrides(gotrue),
    )
    async with running_app(settings) as application:
        yield application


@pytest.fixture
async def http(durable_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(durable_app) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _revoked_and_logged_out(
    durable_app: FastAPI, http: httpx.AsyncClient
) -> tuple[str, str, str, httpx.BasicAuth]:
    """A revoked admin token, a logged-out user token, a live user token, the admin's auth."""
    client_id, secret = await create_client(durable_app)
    revoked = await client_token(http, client_id, secret)
    auth = httpx.BasicAuth(str(client_id), secret)
    assert (await http.get("/auth/admin/roles", headers=bearer(revoked))).status_code == 200
    out = await http.post("/auth/token/revoke", data={"token": revoked}, auth=auth)
    assert out.status_code == 200, out.text

    await register_user(http, "durable@example.com")
    gone = (await login_user(http, "durable@example.com"))["access_token"]
    kept = (await login_user(http, "durable@example.com"))["access_token"]
    assert (await http.post("/auth/users/logout", headers=bearer(gone))).status_code == 204
    return revoked, gone, kept, auth


async def _still_refused(
    http: httpx.AsyncClient, revoked: str, gone: str, kept: str, auth: httpx.BasicAuth
) -> None:
    admin = await http.get("/auth/admin/roles", headers=bearer(revoked))
    assert admin.status_code == 401, admin.text
    introspected = await http.post("/auth/token/introspect", data={"token": revoked}, auth=auth)
    assert introspected.json() == {"active": False}
    assert (await http.get("/auth/users/me", headers=bearer(gone))).status_code == 401
    # Nothing over-blocked: the other session still works.
    assert (await http.get("/auth/users/me", headers=bearer(kept))).status_code == 200


async def test_revocation_and_logout_survive_a_redis_flush(
    durable_app: FastAPI, http: httpx.AsyncClient, own_redis: RedisServer, db: AsyncSession
) -> None:
    revoked, gone, kept, auth = await _revoked_and_logged_out(durable_app, http)
    # Written to PostgreSQL, the source of truth.
    keys = set(await db.scalars(select(Revocation.key)))
    assert any(k.startswith("revoked:jti:") for k in keys)
    assert any(k.startswith("revoked:session:") for k in keys)

    own_redis.flush()
    await _still_refused(http, revoked, gone, kept, auth)
    # The cache was rebuilt from the database, and answers warm again.
    await durable_app.state.revocations.rebuild()
    await _still_refused(http, revoked, gone, kept, auth)


async def test_revocation_and_logout_survive_a_redis_restart(
    durable_app: FastAPI, http: httpx.AsyncClient, own_redis: RedisServer
) -> None:
    revoked, gone, kept, auth = await _revoked_and_logged_out(durable_app, http)
    own_redis.kill()  # no persistence: it comes back empty
    own_redis.start()
    await _still_refused(http, revoked, gone, kept, auth)
