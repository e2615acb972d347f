"""What only the local provider has: hashes, rotation under concurrency, lockout, mailbox, RBAC."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import bcrypt
import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text

from auth_service.config import Settings
from auth_service.identity.local.models import LocalUser
from auth_service.identity.local.passwords import PasswordHasher
from auth_service.main import create_app
from auth_service.rbac.models import UserRole
from auth_service.users.models import Profile
from auth_service.verifier import TokenVerifier
from tests.conftest import make_settings
from tests.factories import USER_PASSWORD, create_role, login_user, register_user
from tests.support.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider, run_oidc_provider

App = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def local_app(database_url: str, redis_url: str | None, clean_db: None) -> App:
    @asynccontextmanager
    async def run(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        values: dict[str, Any] = {
            "auth_service_database_url": database_url,
            "redis_url": redis_url,
            "identity_provider": "local",
            "oauth_redirect_allow_list": ["https://app.example.com/auth"],
        }
        values.update(overrides)
        application = create_app(make_settings(**values))
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                c.app = application  # type: ignore[attr-defined]
                yield c

    return run


@pytest.fixture
async def client(local_app: App) -> AsyncIterator[httpx.AsyncClient]:
    async with local_app() as c:
        yield c


def app_of(client: httpx.AsyncClient) -> FastAPI:
    application: FastAPI = client.app  # type: ignore[attr-defined]
    return application


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


async def stored_hash(client: httpx.AsyncClient, email: str) -> str:
    async with app_of(client).state.session_factory() as session:
        value = await session.scalar(
            select(LocalUser.encrypted_password).where(LocalUser.email == email)
        )
    assert value is not None
    return value


# --- passwords ------------------------------------------------------------------------------
async def test_ready_and_startup_name_the_identity_provider(client: httpx.AsyncClient) -> None:
    ready = await client.get("/ready")
    assert ready.json()["identity_provider"] == "local"


async def test_argon2id_parameters_read_back_from_the_stored_hash(
    client: httpx.AsyncClient,
) -> None:
    await register_user(client, "hash@example.com")
    # The test settings ask for cheap parameters; they are what the hash says.
    assert (await stored_hash(client, "hash@example.com")).startswith(
        "$argon2id$v=19$m=1024,t=1,p=1$"
    )


async def test_default_parameters_are_owasps() -> None:
    defaults = {
        name: Settings.model_fields[f"password_hash_{name}"].default
        for name in ("memory_kib", "time_cost", "parallelism")
    }
    hashed = await PasswordHasher(**defaults).hash("Correct-horse-1")
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def test_imported_bcrypt_hash_logs_in_and_is_rehashed_to_argon2id(
    client: httpx.AsyncClient,
) -> None:
    legacy = bcrypt.hashpw(USER_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    legacy = "$2a$" + legacy[4:]  # GoTrue writes the $2a$ prefix
    async with app_of(client).state.session_factory.begin() as session:
        session.add(
            LocalUser(
                email="old@example.com", encrypted_password=legacy, email_confirmed_at=text("now()")
            )
        )
    wrong = await client.post(
        "/auth/users/login", json={"email": "old@example.com", "password": "Not-it-123"}
    )
    assert wrong.status_code == 401
    assert await stored_hash(client, "old@example.com") == legacy  # no rehash on failure
    await login_user(client, "old@example.com")
    assert (await stored_hash(client, "old@example.com")).startswith("$argon2id$")
    await login_user(client, "old@example.com")  # and the new hash works


async def test_password_policy_reasons(local_app: App, tmp_path: Any) -> None:
    breached = tmp_path / "breached.txt"
    breached.write_text("Password123!\n")
    async with local_app(
        password_min_length=12,
        password_required_characters="lower,upper,digit,symbol",
        password_breached_list_path=str(breached),
    ) as c:
        short = await c.post(
            "/auth/users/register", json={"email": "a@example.com", "password": "abcdefgh"}
        )
        assert short.status_code == 422
        assert short.json()["details"]["reasons"] == ["length", "characters"]
        pwned = await c.post(
            "/auth/users/register", json={"email": "a@example.com", "password": "Password123!"}
        )
        assert pwned.json()["details"]["reasons"] == ["pwned"]
        ok = await c.post(
            "/auth/users/register",
            json={"email": "a@example.com", "password": "Tr0ub4dor&3-long"},
        )
        assert ok.status_code == 201, ok.text


async def test_unknown_email_and_wrong_password_take_the_same_time(local_app: App) -> None:
    # Production-like cost so the hash dominates, as it does in production.
    async with local_app(
        password_hash_memory_kib=19_456,
        password_hash_time_cost=2,
        rate_limit_enabled=False,
        login_lockout_threshold=10_000,
    ) as c:
        await register_user(c, "timing@example.com")

        async def timed(email: str) -> float:
            started = time.perf_counter()
            response = await c.post(
                "/auth/users/login", json={"email": email, "password": "Wrong-password-9"}
            )
            assert response.status_code == 401
            return time.perf_counter() - started

        await timed("timing@example.com")  # warm-up (the dummy hash is made lazily)
        await timed("nobody@example.com")
        known, unknown = [], []
        for _ in range(50):
            known.append(await timed("timing@example.com"))
            unknown.append(await timed("nobody@example.com"))
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.75 < ratio < 1.33, ratio


# --- refresh rotation -----------------------------------------------------------------------
async def test_parent_reuse_after_the_window_revokes_the_family(local_app: App) -> None:
    async with local_app(refresh_token_reuse_interval_seconds=0) as c:
        await register_user(c, "win@example.com")
        r1 = (await login_user(c, "win@example.com"))["refresh_token"]
        r2 = (await c.post("/auth/users/token/refresh", json={"refresh_token": r1})).json()
        await asyncio.sleep(0.05)
        late = await c.post("/auth/users/token/refresh", json={"refresh_token": r1})
        assert late.status_code == 401
        assert late.json()["error"] == "invalid_refresh_token"
        family = await c.post(
            "/auth/users/token/refresh", json={"refresh_token": r2["refresh_token"]}
        )
        assert family.status_code == 401


async def test_concurrent_refreshes_of_one_token_rotate_exactly_once(
    client: httpx.AsyncClient,
) -> None:
    await register_user(client, "race@example.com")
    session = await login_user(client, "race@example.com")
    token = session["refresh_token"]
    responses = await asyncio.gather(
        *(client.post("/auth/users/token/refresh", json={"refresh_token": token}) for _ in range(8))
    )
    assert {r.status_code for r in responses} <= {200, 401}
    winners = {r.json()["refresh_token"] for r in responses if r.status_code == 200}
    assert len(winners) == 1  # everyone who got through got the one current token
    async with app_of(client).state.session_factory() as db:
        live = await db.scalar(
            text(
                "SELECT count(*) FROM auth_service_data.local_refresh_tokens"
                " WHERE NOT revoked AND session_id = :s"
            ),
            {"s": uuid.UUID(claims(session["access_token"])["session_id"])},
        )
    assert live == 1


# --- access tokens ----------------------------------------------------------------------------
async def test_rbac_roles_reach_the_next_token_and_open_admin_endpoints(
    client: httpx.AsyncClient,
) -> None:
    app = app_of(client)
    user_id = uuid.UUID((await register_user(client, "boss@example.com"))["user"]["id"])
    before = await login_user(client, "boss@example.com")
    assert claims(before["access_token"])["roles"] == []
    assert (
        await client.get(f"/auth/admin/users/{user_id}", headers=bearer(before["access_token"]))
    ).status_code == 403
    role_id = await create_role(app, "boss", permissions=["users:read", "users:write"])
    async with app.state.session_factory.begin() as session:
        session.add(UserRole(user_id=user_id, role_id=role_id))
    after = await login_user(client, "boss@example.com")
    shape = claims(after["access_token"])
    assert shape["roles"] == ["boss"]
    assert shape["permissions"] == ["users:read", "users:write"]
    async with app.state.session_factory() as session:
        sql = await session.scalar(
            text("SELECT auth_service_data.get_user_rbac_claims(:u)"), {"u": user_id}
        )
    assert sql == {"roles": shape["roles"], "permissions": shape["permissions"]}
    seen = await client.get(f"/auth/admin/users/{user_id}", headers=bearer(after["access_token"]))
    assert seen.status_code == 200, seen.text
    assert seen.json()["roles"] == ["boss"]


async def test_local_tokens_use_our_jwks_and_pass_the_library_verifier(
    client: httpx.AsyncClient,
) -> None:
    await register_user(client, "lib@example.com")
    token = (await login_user(client, "lib@example.com"))["access_token"]
    header = jwt.get_unverified_header(token)
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert header["alg"] == "ES256"
    assert header["kid"] in {key["kid"] for key in jwks["keys"]}
    verifier = TokenVerifier(
        "http://testserver/.well-known/jwks.json",
        issuer="http://testserver/auth/v1",
        audience="authenticated",
        http_client=client,
    )
    verified = await verifier.verify(token)
    assert verified.claims["email"] == "lib@example.com"
    assert verified.claims["session_id"]


async def test_a_token_of_an_ended_session_is_refused_even_without_the_denylist(
    client: httpx.AsyncClient,
) -> None:
    await register_user(client, "end@example.com")
    session = await login_user(client, "end@example.com")
    token = session["access_token"]
    # End the session in the database only (another replica, or the operator).
    async with app_of(client).state.session_factory.begin() as db:
        await db.execute(text("DELETE FROM auth_service_data.local_sessions"))
    response = await client.post(
        "/auth/users/mfa/enroll", json={"friendly_name": "x"}, headers=bearer(token)
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


async def test_logout_others_keeps_the_current_session(client: httpx.AsyncClient) -> None:
    await register_user(client, "others@example.com")
    one = await login_user(client, "others@example.com")
    two = await login_user(client, "others@example.com")
    out = await client.post(
        "/auth/users/logout", params={"scope": "others"}, headers=bearer(two["access_token"])
    )
    assert out.status_code == 204
    assert (
        await client.get("/auth/users/me", headers=bearer(two["access_token"]))
    ).status_code == 200
    assert (
        await client.get("/auth/users/me", headers=bearer(one["access_token"]))
    ).status_code == 401
    stale = await client.post(
        "/auth/users/token/refresh", json={"refresh_token": one["refresh_token"]}
    )
    assert stale.status_code == 401


# --- brute force ------------------------------------------------------------------------------
async def test_failed_logins_lock_out_known_and_unknown_accounts_alike(local_app: App) -> None:
    async with local_app(rate_limit_enabled=False, login_lockout_threshold=3) as c:
        await register_user(c, "locked@example.com")
        for email in ("locked@example.com", "ghost@example.com"):
            codes = []
            for _ in range(5):
                response = await c.post(
                    "/auth/users/login", json={"email": email, "password": "Wrong-pass-1"}
                )
                codes.append(response.status_code)
            assert codes[:3] == [401, 401, 401]
            assert codes[-1] == 429
            assert "Retry-After" in response.headers
        # Locked even with the right password, until the delay has passed.
        right = await c.post(
            "/auth/users/login", json={"email": "locked@example.com", "password": USER_PASSWORD}
        )
        assert right.status_code == 429


async def test_otp_attempts_are_capped(local_app: App) -> None:
    async with local_app(email_token_max_attempts=2, rate_limit_enabled=False) as c:
        await register_user(c, "cap@example.com")
        await c.post("/auth/users/login/magiclink", json={"email": "cap@example.com"})
        async with app_of(c).state.session_factory() as session:
            meta = await session.scalar(
                text("SELECT meta FROM auth_service_data.dev_mailbox ORDER BY id DESC LIMIT 1")
            )
        good = meta["token"]
        bad = "000000" if good != "000000" else "111111"
        for _ in range(2):
            body = {"type": "email", "email": "cap@example.com", "token": bad}
            assert (await c.post("/auth/users/verify", json=body)).status_code == 401
        body = {"type": "email", "email": "cap@example.com", "token": good}
        assert (await c.post("/auth/users/verify", json=body)).status_code == 401


# --- mailbox, admin ---------------------------------------------------------------------------
async def test_dev_mailbox_only_in_development(local_app: App) -> None:
    async with local_app(environment="development", local_autoconfirm=False) as c:
        await c.post(
            "/auth/users/register", json={"email": "new@example.com", "password": USER_PASSWORD}
        )
        mails = (await c.get("/dev/mailbox", params={"to": "new@example.com"})).json()
        assert mails[0]["subject"] == "Confirm your email"
        assert mails[0]["token_hash"] in mails[0]["link"]
        assert mails[0]["token"] in mails[0]["body"]
        assert "/dev/mailbox" in (await c.get("/openapi.json")).json()["paths"]
    async with local_app(environment="test") as c:
        assert (await c.get("/dev/mailbox")).status_code == 404
        # Not mounted, so not in the schema either: the OpenAPI lists what answers.
        assert "/dev/mailbox" not in (await c.get("/openapi.json")).json()["paths"]


async def test_deleting_a_user_takes_our_rows_with_it(client: httpx.AsyncClient) -> None:
    app = app_of(client)
    user_id = uuid.UUID((await register_user(client, "del@example.com"))["user"]["id"])
    role_id = await create_role(app, "member")
    async with app.state.session_factory.begin() as session:
        session.add(UserRole(user_id=user_id, role_id=role_id))
    await app.state.identity_provider.admin_delete_user(user_id)
    async with app.state.session_factory() as session:
        assert await session.get(Profile, user_id) is None
        assert (
            await session.scalars(select(UserRole).where(UserRole.user_id == user_id))
        ).all() == []


async def test_initial_admin_bootstrap_works_locally(local_app: App) -> None:
    async with local_app(
        initial_admin_email="root@example.com", initial_admin_password="Root-password-1"
    ) as c:
        session = await login_user(c, "root@example.com", "Root-password-1")
        assert "admin" in claims(session["access_token"])["roles"]


# --- social sign-in ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def oidc() -> Iterator[OidcProvider]:
    with run_oidc_provider() as provider:
        provider.redirect_uris = ("http://testserver/auth/v1/callback",)
        yield provider


async def test_unconfigured_provider_is_400_provider_disabled(client: httpx.AsyncClient) -> None:
    response = await client.get("/auth/users/login/google")
    assert response.status_code == 400
    assert response.json()["error"] == "provider_disabled"


async def test_social_sign_in_ends_with_a_session_through_the_pkce_callback(
    local_app: App, oidc: OidcProvider
) -> None:
    oidc.reset()
    providers = [
        {
            "name": "test",
            "issuer": oidc.issuer,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scopes": ["openid", "email", "profile"],
        }
    ]
    async with local_app(oidc_providers=json.dumps(providers)) as c, httpx.AsyncClient() as web:
        start = await c.get(
            "/auth/users/login/test", params={"redirect_to": "https://app.example.com/auth/cb"}
        )
        assert start.status_code == 302, start.text
        ours = await c.get(start.headers["location"])
        assert ours.status_code == 302, ours.text
        upstream = await web.get(ours.headers["location"])
        assert upstream.status_code == 302, upstream.text
        back = await c.get(upstream.headers["location"])
        assert back.status_code == 302, back.text
        callback = urlsplit(back.headers["location"])
        assert callback.path == "/auth/users/login/test/callback"
        assert "code" in parse_qs(callback.query)
        done = await c.get(back.headers["location"])
        assert done.status_code == 303, done.text
        fragment = parse_qs(urlsplit(done.headers["location"]).fragment)
        token = fragment["access_token"][0]
        assert claims(token)["email"] == oidc.user.email
        assert claims(token)["amr"][0]["method"] == "oauth"
        me = await c.get("/auth/users/me", headers=bearer(token))
        assert me.status_code == 200
        # Our one-time code cannot be exchanged twice.
        replay = await c.get(back.headers["location"])
        assert replay.status_code == 400
