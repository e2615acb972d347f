"""RFC 7662 introspection and RFC 7009 revocation, with the denylist in Redis."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from auth_service.config import Settings
from auth_service.main import create_app
from tests.conftest import make_settings
from tests.factories import client_token, create_client

INTROSPECT = "/auth/token/introspect"
REVOKE = "/auth/token/revoke"


def basic(client_id: object, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def test_introspection_requires_client_authentication(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    client_id, secret = await create_client(app)
    token = await client_token(client, client_id, secret)
    for headers in ({}, basic(client_id, "wrong")):
        response = await client.post(INTROSPECT, data={"token": token}, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
        assert response.headers["www-authenticate"] == 'Basic realm="auth_service"'


async def test_active_token_introspects_with_its_claims(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    client_id, secret = await create_client(app, roles=("admin",))
    observer_id, observer_secret = await create_client(app, roles=())
    token = await client_token(client, client_id, secret, scope="clients:read")
    response = await client.post(
        INTROSPECT, data={"token": token}, headers=basic(observer_id, observer_secret)
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["active"] is True
    assert body["client_id"] == body["sub"] == str(client_id)
    assert body["scope"] == "clients:read"
    assert body["permissions"] == ["clients:read"]
    assert body["roles"] == ["admin"]
    assert body["iss"] == settings.token_issuer
    assert body["aud"] == settings.default_audience
    assert body["token_type"] == "Bearer"
    assert body["exp"] > time.time()


async def test_garbage_and_foreign_tokens_are_exactly_inactive(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    client_id, secret = await create_client(app)
    foreign = jwt.encode(
        {"sub": "x", "exp": int(time.time()) + 60},
        "a-secret-that-is-at-least-32-bytes-long",
        algorithm="HS256",
        headers={"typ": "at+jwt"},
    )
    for token in ("garbage", "a.b.c", foreign):
        response = await client.post(
            INTROSPECT, data={"token": token}, headers=basic(client_id, secret)
        )
        assert response.status_code == 200
        assert response.json() == {"active": False}


async def test_missing_token_parameter_is_invalid_request(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    client_id, secret = await create_client(app)
    for path in (INTROSPECT, REVOKE):
        response = await client.post(
            path, data={"token_type_hint": "access_token"}, headers=basic(client_id, secret)
        )
        assert response.status_code == 400
        assert response.json() == {
            "error": "invalid_request",
            "error_description": "Missing token.",
        }


async def test_revoked_token_is_inactive_and_no_longer_opens_admin_endpoints(
    app: FastAPI, client: httpx.AsyncClient, require_redis: str, settings: Settings
) -> None:
    client_id, secret = await create_client(app, roles=("admin",))
    token = await client_token(client, client_id, secret)
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/auth/admin/clients", headers=bearer)).status_code == 200

    response = await client.post(REVOKE, data={"token": token}, headers=basic(client_id, secret))
    assert response.status_code == 200
    assert response.content == b""

    introspected = await client.post(
        INTROSPECT, data={"token": token}, headers=basic(client_id, secret)
    )
    assert introspected.json() == {"active": False}
    denied = await client.get("/auth/admin/clients", headers=bearer)
    assert denied.status_code == 401
    assert denied.json()["error"] == "invalid_token"

    # The denylist entry is in Redis and lives exactly as long as the token would have.
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    redis = Redis.from_url(require_redis)
    try:
        ttl = await redis.ttl(f"{settings.redis_key_prefix}revoked:jti:{jti}")
    finally:
        await redis.aclose()
    assert 0 < ttl <= settings.access_token_ttl_seconds

    # Other tokens of the same client are unaffected.
    fresh = await client_token(client, client_id, secret)
    ok = await client.get("/auth/admin/clients", headers={"Authorization": f"Bearer {fresh}"})
    assert ok.status_code == 200


async def test_a_client_cannot_revoke_another_clients_token(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    owner_id, owner_secret = await create_client(app)
    other_id, other_secret = await create_client(app)
    token = await client_token(client, owner_id, owner_secret)

    response = await client.post(
        REVOKE, data={"token": token}, headers=basic(other_id, other_secret)
    )
    assert response.status_code == 200  # RFC 7009: nothing to tell the caller
    introspected = await client.post(
        INTROSPECT, data={"token": token}, headers=basic(owner_id, owner_secret)
    )
    assert introspected.json()["active"] is True


async def test_revoking_unknown_or_invalid_tokens_answers_200(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    client_id, secret = await create_client(app)
    for token in ("garbage", "a.b.c", str(uuid.uuid4())):
        response = await client.post(
            REVOKE,
            data={"token": token, "token_type_hint": "access_token"},
            headers=basic(client_id, secret),
        )
        assert response.status_code == 200


async def test_revocation_requires_client_authentication(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    client_id, secret = await create_client(app)
    token = await client_token(client, client_id, secret)
    response = await client.post(REVOKE, data={"token": token})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    still = await client.post(INTROSPECT, data={"token": token}, headers=basic(client_id, secret))
    assert still.json()["active"] is True


@pytest.fixture
async def app_without_redis(
    database_url: str, clean_db: None
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """Redis configured but unreachable (nothing listens on port 1)."""
    settings = make_settings(
        auth_service_database_url=database_url, redis_url="redis://127.0.0.1:1/0"
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield app, c


async def test_without_the_denylist_tokens_are_issued_but_never_reported_active(
    app_without_redis: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = app_without_redis
    client_id, secret = await create_client(app)
    token = await client_token(client, client_id, secret)  # the grant needs no Redis

    for path in (INTROSPECT, REVOKE):
        response = await client.post(path, data={"token": token}, headers=basic(client_id, secret))
        assert response.status_code == 503, path
        assert response.json()["error"] == "service_unavailable"
        assert "redis" not in response.text.lower()
    admin = await client.get("/auth/admin/clients", headers={"Authorization": f"Bearer {token}"})
    assert admin.status_code == 503
