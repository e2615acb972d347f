"""Local verification of user JWTs: JWKS cache and rotation, HS256, claim checks, denylist."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI

from tests.factories import admin_headers, login_user, register_user
from tests.support.gotrue import JWT_SECRET, GoTrueStandIn

AppWith = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def me_status(client: httpx.AsyncClient, token: str) -> int:
    return (await client.get("/auth/users/me", headers=bearer(token))).status_code


async def test_jwks_is_fetched_once_and_cached(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn
) -> None:
    tokens = []
    for email in ("c1@example.com", "c2@example.com"):
        await register_user(client, email)
        tokens.append((await login_user(client, email))["access_token"])
    for _ in range(5):
        for token in tokens:
            assert await me_status(client, token) == 200
    assert gotrue.jwks_hits == 1


async def test_unknown_kid_triggers_one_refetch(app_with: AppWith, gotrue: GoTrueStandIn) -> None:
    async with app_with(supabase_jwks_min_refetch_seconds=0) as client:
        await register_user(client, "rot@example.com")
        old = (await login_user(client, "rot@example.com"))["access_token"]
        assert await me_status(client, old) == 200
        assert gotrue.jwks_hits == 1
        gotrue.rotate_key()  # Supabase rotated its signing key
        new = (await login_user(client, "rot@example.com"))["access_token"]
        assert jwt.get_unverified_header(new)["kid"] != jwt.get_unverified_header(old)["kid"]
        assert await me_status(client, new) == 200
        assert await me_status(client, old) == 200  # old keys stay in the JWKS
        assert gotrue.jwks_hits == 2


async def test_unknown_kid_refetch_is_rate_limited(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn
) -> None:
    await register_user(client, "rl@example.com")
    first = (await login_user(client, "rl@example.com"))["access_token"]
    assert await me_status(client, first) == 200
    gotrue.rotate_key()
    new = (await login_user(client, "rl@example.com"))["access_token"]
    # Inside SUPABASE_JWKS_MIN_REFETCH_SECONDS no refetch happens, so the kid stays unknown.
    for _ in range(3):
        assert await me_status(client, new) == 401
    assert gotrue.jwks_hits == 1


async def test_token_signed_by_a_foreign_key_with_a_known_kid_is_refused(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn
) -> None:
    user = gotrue.create_user("forged@example.com", "x")
    genuine = gotrue.mint_token(user)
    assert await me_status(client, genuine) == 200
    claims = jwt.decode(genuine, options={"verify_signature": False})
    kid = jwt.get_unverified_header(genuine)["kid"]
    forged = jwt.encode(
        claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": kid}
    )
    assert await me_status(client, forged) == 401


async def test_hs256_tokens_accepted_with_the_jwt_secret(
    app_with: AppWith, gotrue: GoTrueStandIn
) -> None:
    gotrue.sign_hs256 = True
    async with app_with(supabase_jwt_secret=JWT_SECRET) as client:
        await register_user(client, "hs@example.com")
        token = (await login_user(client, "hs@example.com"))["access_token"]
        assert jwt.get_unverified_header(token)["alg"] == "HS256"
        assert await me_status(client, token) == 200
        user = gotrue.user_by_email("hs@example.com")
        assert user is not None
        wrong_secret = gotrue.mint_token(user, secret="another-secret-of-32-characters-xx")
        assert await me_status(client, wrong_secret) == 401


async def test_hs256_tokens_refused_without_a_jwt_secret(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn
) -> None:
    user = gotrue.create_user("nosecret@example.com", "x")
    token = gotrue.mint_token(user, secret=JWT_SECRET)
    assert await me_status(client, token) == 401


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "anon"},
        {"aud": None},
        {"iss": "http://evil.example.com/auth/v1"},
        {"exp": int(time.time()) - 5},
        {"exp": None},
        {"iat": None},
        {"sub": "not-a-uuid"},
    ],
    ids=["wrong-aud", "no-aud", "wrong-iss", "expired", "no-exp", "no-iat", "bad-sub"],
)
async def test_claims_are_checked(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn, overrides: dict[str, object]
) -> None:
    user = gotrue.create_user("claims@example.com", "x")
    assert await me_status(client, gotrue.mint_token(user)) == 200
    assert await me_status(client, gotrue.mint_token(user, **overrides)) == 401


async def test_alg_none_and_key_confusion_are_refused(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn
) -> None:
    user = gotrue.create_user("alg@example.com", "x")
    genuine = gotrue.mint_token(user)
    assert await me_status(client, genuine) == 200
    claims = jwt.decode(genuine, options={"verify_signature": False})
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert await me_status(client, unsigned) == 401
    # HS256 "signed" with the public key as the secret (the classic confusion attack).
    pem = (
        gotrue.keys[-1][1]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": gotrue.keys[-1][0]}).encode())
    body = b64(json.dumps(claims).encode())
    sig = b64(hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest())
    assert await me_status(client, f"{head}.{body}.{sig}") == 401
    assert await me_status(client, "garbage") == 401


async def test_global_logout_refuses_every_session_of_the_user(
    client: httpx.AsyncClient,
) -> None:
    await register_user(client, "g@example.com")
    await register_user(client, "bystander@example.com")
    laptop = (await login_user(client, "g@example.com"))["access_token"]
    phone = (await login_user(client, "g@example.com"))["access_token"]
    other = (await login_user(client, "bystander@example.com"))["access_token"]
    out = await client.post("/auth/users/logout?scope=global", headers=bearer(phone))
    assert out.status_code == 204
    assert await me_status(client, laptop) == 401
    assert await me_status(client, phone) == 401
    assert await me_status(client, other) == 200
    # iat has one-second resolution; a later sign-in is accepted again.
    await asyncio.sleep(1.1)
    fresh = (await login_user(client, "g@example.com"))["access_token"]
    assert await me_status(client, fresh) == 200


async def test_local_logout_leaves_other_sessions_alone(client: httpx.AsyncClient) -> None:
    await register_user(client, "l@example.com")
    laptop = (await login_user(client, "l@example.com"))["access_token"]
    phone = (await login_user(client, "l@example.com"))["access_token"]
    assert (await client.post("/auth/users/logout", headers=bearer(phone))).status_code == 204
    assert await me_status(client, phone) == 401
    assert await me_status(client, laptop) == 200


async def test_logout_needs_a_valid_user_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/users/logout", headers=bearer("nope"))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


async def test_machine_tokens_are_not_user_tokens(client: httpx.AsyncClient, app: FastAPI) -> None:
    headers = await admin_headers(app, client)
    response = await client.get("/auth/users/me", headers=headers)
    assert response.status_code == 401


async def test_unreachable_denylist_fails_closed_with_503(
    app_with: AppWith, gotrue: GoTrueStandIn
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{sock.getsockname()[1]}/0"  # bound, never listening
        user = gotrue.create_user("nodeny@example.com", "x")
        async with app_with(redis_url=dead) as client:
            response = await client.get("/auth/users/me", headers=bearer(gotrue.mint_token(user)))
    assert response.status_code == 503
    assert response.json()["error"] == "service_unavailable"


async def test_password_change_refuses_the_other_sessions_but_keeps_this_one(
    client: httpx.AsyncClient,
) -> None:
    await register_user(client, "pw@example.com")
    laptop = await login_user(client, "pw@example.com")
    phone = (await login_user(client, "pw@example.com"))["access_token"]
    changed = await client.post(
        "/auth/users/password/update",
        json={"password": "Changed-pass-7"},
        headers=bearer(laptop["access_token"]),
    )
    assert changed.status_code == 200, changed.text
    # Supabase signed the phone out; its still-unexpired access token stops with us too.
    assert await me_status(client, phone) == 401
    assert await me_status(client, laptop["access_token"]) == 200
    refreshed = await client.post(
        "/auth/users/token/refresh", json={"refresh_token": laptop["refresh_token"]}
    )
    assert refreshed.status_code == 200
    assert await me_status(client, refreshed.json()["access_token"]) == 200
    # A later global logout from another session still reaches the spared one.
    await asyncio.sleep(1.1)
    tablet = (await login_user(client, "pw@example.com", "Changed-pass-7"))["access_token"]
    out = await client.post("/auth/users/logout?scope=global", headers=bearer(tablet))
    assert out.status_code == 204
    assert await me_status(client, refreshed.json()["access_token"]) == 401


@pytest.mark.parametrize(
    "overrides",
    [
        {"session_id": {"id": "x"}},
        {"aal": ["aal2"]},
        {"email": 42},
        {"is_anonymous": "false"},
        {"amr": "password"},
        {"iat": True},
        {"exp": int(time.time()) + 3 * 86_400},
    ],
    ids=["session-object", "aal-list", "email-number", "anon-string", "amr-string", "iat-bool",
         "lifetime-over-cap"],
)  # fmt: skip
async def test_claims_of_the_wrong_json_type_or_too_long_a_life_are_refused(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn, overrides: dict[str, object]
) -> None:
    user = gotrue.create_user("types@example.com", "x")
    assert await me_status(client, gotrue.mint_token(user)) == 200
    assert await me_status(client, gotrue.mint_token(user, **overrides)) == 401
