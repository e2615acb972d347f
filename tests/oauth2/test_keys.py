"""Signing keys: JWKS, metadata, encryption at rest, rotation, removal, rejected tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.config import Settings
from auth_service.main import create_app
from auth_service.oauth2.keys import (
    KeyEncryptor,
    build_ring,
    generate_signing_key,
    rotate_keys,
)
from auth_service.oauth2.models import SigningKey
from auth_service.oauth2.repository import SigningKeyRepository
from tests.conftest import make_settings
from tests.factories import client_token, create_client

GRANT = {"grant_type": "client_credentials"}


def basic(client_id: object, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def introspect(client: httpx.AsyncClient, token: str, auth: tuple[Any, str]) -> Any:
    response = await client.post(
        "/auth/token/introspect", data={"token": token}, headers=basic(*auth)
    )
    assert response.status_code == 200
    return response.json()


async def admin_status(client: httpx.AsyncClient, token: str) -> int:
    response = await client.get("/auth/admin/clients", headers={"Authorization": f"Bearer {token}"})
    return response.status_code


async def test_jwks_publishes_only_public_es256_keys_and_is_cacheable(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert "max-age" in response.headers["cache-control"]
    keys = response.json()["keys"]
    assert len(keys) == 1
    (key,) = keys
    assert key["kty"] == "EC"
    assert key["crv"] == "P-256"
    assert key["alg"] == "ES256"
    assert key["use"] == "sig"
    assert key["kid"] == app.state.oauth2.keys.ring.signing_kid
    assert "d" not in key


async def test_authorization_server_metadata(client: httpx.AsyncClient, settings: Settings) -> None:
    response = await client.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    body = response.json()
    issuer = settings.token_issuer
    assert body["issuer"] == issuer
    assert body["token_endpoint"] == f"{issuer}/auth/token"
    assert body["jwks_uri"] == f"{issuer}/.well-known/jwks.json"
    assert body["introspection_endpoint"] == f"{issuer}/auth/token/introspect"
    assert body["revocation_endpoint"] == f"{issuer}/auth/token/revoke"
    assert body["grant_types_supported"] == [
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    ]
    methods = ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt"]
    assert body["token_endpoint_auth_methods_supported"] == methods
    assert body["introspection_endpoint_auth_methods_supported"] == methods
    assert body["revocation_endpoint_auth_methods_supported"] == methods
    algs = body["token_endpoint_auth_signing_alg_values_supported"]
    assert "ES256" in algs
    assert "HS256" in algs
    assert "none" not in algs
    assert "HS384" not in algs  # generated secrets are too short for it: not advertised
    assert body["dpop_signing_alg_values_supported"] == [
        "ES256", "ES384", "ES512", "RS256", "PS256", "EdDSA",
    ]  # fmt: skip


async def test_private_key_is_encrypted_at_rest_and_bound_to_its_kid(
    app: FastAPI, db: AsyncSession, settings: Settings
) -> None:
    rows = (await db.scalars(select(SigningKey))).all()
    assert len(rows) == 1
    row = rows[0]
    assert "PRIVATE KEY" not in row.private_key_encrypted
    assert "d" not in row.public_jwk

    right = KeyEncryptor(settings.signing_key_encryption_key.get_secret_value())
    pem = right.decrypt(row.private_key_encrypted, row.kid)
    private = serialization.load_pem_private_key(pem, password=None)
    assert private.public_key().public_numbers() == (  # type: ignore[union-attr]
        app.state.oauth2.keys.ring.verification[row.kid].key.public_numbers()
    )
    with pytest.raises(InvalidTag):
        KeyEncryptor("another-encryption-key").decrypt(row.private_key_encrypted, row.kid)
    with pytest.raises(InvalidTag):
        right.decrypt(row.private_key_encrypted, "some-other-kid")


async def test_rotation_keeps_old_tokens_valid_and_removal_kills_them(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    keys = app.state.oauth2.keys
    client_id, secret = await create_client(app)
    old_kid = keys.ring.signing_kid
    old_token = await client_token(client, client_id, secret)

    async with app.state.session_factory.begin() as session:
        new_kid = await rotate_keys(session, keys.encryptor, settings.access_token_ttl_seconds)
    await keys.refresh()

    assert new_kid != old_kid
    new_token = await client_token(client, client_id, secret)
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    published = {k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    assert published == {old_kid, new_kid}
    assert (await introspect(client, old_token, (client_id, secret)))["active"] is True
    assert await admin_status(client, old_token) == 200

    async with app.state.session_factory.begin() as session:
        assert await SigningKeyRepository(session).delete(old_kid)
    await keys.refresh()

    assert await introspect(client, old_token, (client_id, secret)) == {"active": False}
    assert await admin_status(client, old_token) == 401
    assert (await introspect(client, new_token, (client_id, secret)))["active"] is True
    published = {k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    assert published == {new_kid}


def test_retired_key_is_published_until_its_tokens_have_expired() -> None:
    settings = make_settings(access_token_ttl_seconds=900)
    encryptor = KeyEncryptor("k")
    now = datetime.now(UTC)
    active, retired = generate_signing_key(encryptor), generate_signing_key(encryptor)
    active.retired_at = None
    retired.retired_at = now - timedelta(seconds=600)
    private = {
        row.kid: serialization.load_pem_private_key(
            encryptor.decrypt(row.private_key_encrypted, row.kid), password=None
        )
        for row in (active, retired)
    }
    ring = build_ring([active, retired], settings=settings, private_keys=private, now=now)  # type: ignore[arg-type]
    assert ring.signing_kid == active.kid
    assert set(ring.verification) == {active.kid, retired.kid}

    later = now + timedelta(seconds=301)  # 901 s after retirement: its last token has expired
    ring = build_ring([active, retired], settings=settings, private_keys=private, now=later)  # type: ignore[arg-type]
    assert set(ring.verification) == {active.kid}
    assert [k["kid"] for k in ring.jwks["keys"]] == [active.kid]


def _forge(app: FastAPI, settings: Settings, client_id: str, **changes: Any) -> str:
    """A token signed with our real key, with one thing changed."""
    ring = app.state.oauth2.keys.ring
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.token_issuer,
        "sub": client_id,
        "client_id": client_id,
        "aud": settings.default_audience,
        "iat": now,
        "exp": now + 300,
        "jti": "j" * 32,
        "roles": ["admin"],
        "permissions": ["clients:read"],
        "scope": "clients:read",
    }
    claims.update(changes.pop("claims", {}))
    headers = {"typ": "at+jwt", "kid": ring.signing_kid, **changes.pop("headers", {})}
    key = changes.pop("key", ring.signing_key)
    algorithm = changes.pop("algorithm", "ES256")
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def _unsigned(app: FastAPI, settings: Settings, client_id: str) -> str:
    good = _forge(app, settings, client_id)
    _, payload, _ = good.split(".")
    header = base64.urlsafe_b64encode(
        b'{"alg":"none","typ":"at+jwt","kid":"'
        + app.state.oauth2.keys.ring.signing_kid.encode()
        + b'"}'
    ).rstrip(b"=")
    return f"{header.decode()}.{payload}."


async def test_verification_rejects_none_confusion_typ_iss_aud_and_expiry(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    client_id, secret = await create_client(app, roles=("admin",))
    cid = str(client_id)
    ring = app.state.oauth2.keys.ring
    public_pem = (
        ring.verification[ring.signing_kid]
        .key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        .decode()
    )
    control = _forge(app, settings, cid)
    assert await admin_status(client, control) == 200  # the forger itself is sound

    # HS256 signed with the published public key as the "secret" (the classic confusion).
    header = base64.urlsafe_b64encode(
        json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": ring.signing_kid}).encode()
    ).rstrip(b"=")
    payload = control.split(".")[1].encode()
    signature = base64.urlsafe_b64encode(
        hmac.new(public_pem.encode(), header + b"." + payload, hashlib.sha256).digest()
    ).rstrip(b"=")
    hs_confusion = (header + b"." + payload + b"." + signature).decode()

    rejected = {
        "alg none": _unsigned(app, settings, cid),
        "hs/es confusion": hs_confusion,
        "typ JWT": _forge(app, settings, cid, headers={"typ": "JWT"}),
        "no typ": jwt.encode(
            jwt.decode(control, options={"verify_signature": False}),
            ring.signing_key,
            algorithm="ES256",
            headers={"kid": ring.signing_kid},
        ),
        "wrong iss": _forge(app, settings, cid, claims={"iss": "https://evil.example"}),
        "wrong aud": _forge(app, settings, cid, claims={"aud": "another-api"}),
        "expired": _forge(
            app, settings, cid, claims={"iat": int(time.time()) - 1000, "exp": int(time.time()) - 1}
        ),
        "unknown kid": _forge(app, settings, cid, headers={"kid": "nope"}),
        "sub is not client": _forge(app, settings, cid, claims={"sub": "someone-else"}),
    }
    for reason, token in rejected.items():
        assert await admin_status(client, token) == 401, reason
        if reason != "wrong aud":  # introspection accepts any of our audiences
            body = await introspect(client, token, (client_id, secret))
            assert body == {"active": False}, reason


@pytest.fixture
async def hs256_app(
    database_url: str, redis_url: str | None, clean_db: None
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = make_settings(
        auth_service_database_url=database_url,
        redis_url=redis_url,
        m2m_signing_algorithm="HS256",
        m2m_jwt_secret_key="a-shared-hs256-secret-of-at-least-32-bytes",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield app, c


async def test_hs256_by_configuration_signs_with_the_shared_secret_and_publishes_nothing(
    hs256_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = hs256_app
    client_id, secret = await create_client(app)
    token = await client_token(client, client_id, secret)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(
        token,
        "a-shared-hs256-secret-of-at-least-32-bytes",
        algorithms=["HS256"],
        audience="auth-service",
    )
    assert claims["sub"] == str(client_id)
    assert (await client.get("/.well-known/jwks.json")).json() == {"keys": []}
    assert await admin_status(client, token) == 200
    assert (await introspect(client, token, (client_id, secret)))["active"] is True

    # A token signed with any other secret is refused.
    forged = jwt.encode(
        {**claims},
        "another-secret-that-is-32-bytes-long!!",
        algorithm="HS256",
        headers={"typ": "at+jwt", "kid": jwt.get_unverified_header(token)["kid"]},
    )
    assert await admin_status(client, forged) == 401


async def test_a_changed_encryption_key_stops_startup_with_a_clear_message(
    app: FastAPI, database_url: str, redis_url: str | None
) -> None:
    # `app` has created and stored the first key; a second instance with another key can't use it.
    settings = make_settings(
        auth_service_database_url=database_url,
        redis_url=redis_url,
        signing_key_encryption_key="a-different-encryption-key-entirely",
    )
    other = create_app(settings)
    with pytest.raises(RuntimeError, match="SIGNING_KEY_ENCRYPTION_KEY"):
        async with other.router.lifespan_context(other):
            pass


async def test_openid_configuration_serves_the_same_metadata(client: httpx.AsyncClient) -> None:
    oauth = (await client.get("/.well-known/oauth-authorization-server")).json()
    response = await client.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    oidc = response.json()
    assert oidc == {**oauth, "subject_types_supported": ["public"]}
    # Machine tokens have no end user: nothing here may promise an OpenID provider's endpoints.
    assert "userinfo_endpoint" not in oidc
    assert "authorization_endpoint" not in oidc


async def test_without_token_issuer_the_issuer_follows_host_port_and_root_path(
    database_url: str,
) -> None:
    settings = make_settings(
        auth_service_database_url=database_url,
        token_issuer=None,
        host="0.0.0.0",  # noqa: S104 - bound everywhere, reached on loopback
        port=8123,
        root_path="/identity/",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            body = (await c.get("/.well-known/oauth-authorization-server")).json()
            client_id, secret = await create_client(app)
            token = await client_token(c, client_id, secret)
    assert body["issuer"] == "http://127.0.0.1:8123/identity"
    assert body["token_endpoint"] == "http://127.0.0.1:8123/identity/auth/token"
    assert body["jwks_uri"] == "http://127.0.0.1:8123/identity/.well-known/jwks.json"
    assert jwt.decode(token, options={"verify_signature": False})["iss"] == body["issuer"]
