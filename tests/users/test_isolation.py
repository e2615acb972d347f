"""A supabase client holds one session; ours must never leak identity between requests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx

from tests.factories import USER_PASSWORD, register_user
from tests.support.gotrue import GoTrueStandIn

AppWith = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
ROUNDS = 50


async def test_concurrent_logins_of_two_users_never_cross(app_with: AppWith) -> None:
    async with app_with(rate_limit_login="10000/minute") as client:
        ids = {}
        for email in ("ann@example.com", "ben@example.com"):
            ids[email] = (await register_user(client, email))["user"]["id"]

        async def login_then_me(email: str) -> tuple[str, str, str, str]:
            login = await client.post(
                "/auth/users/login", json={"email": email, "password": USER_PASSWORD}
            )
            assert login.status_code == 200, login.text
            session = login.json()
            me = await client.get(
                "/auth/users/me", headers={"Authorization": f"Bearer {session['access_token']}"}
            )
            assert me.status_code == 200, me.text
            return email, session["user"]["id"], session["user"]["email"], me.json()["user_id"]

        jobs = [
            login_then_me(e) for _ in range(ROUNDS) for e in ("ann@example.com", "ben@example.com")
        ]
        results = await asyncio.gather(*jobs)
    assert len(results) == 2 * ROUNDS
    for email, session_user, session_email, me_user in results:
        assert session_email == email
        assert session_user == ids[email]
        assert me_user == ids[email]


async def test_client_ip_is_forwarded_when_configured(
    app_with: AppWith, gotrue: GoTrueStandIn
) -> None:
    async with app_with(supabase_forward_client_ip=True, trust_forwarded_for=True) as client:
        await client.post(
            "/auth/users/login",
            json={"email": "ip@example.com", "password": USER_PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.7, 10.0.0.1"},
        )
        await client.post("/auth/users/password/reset", json={"email": "ip@example.com"})
    seen = [
        r["x_forwarded_for"]
        for r in gotrue.requests
        if r["path"] != "/auth/v1/.well-known/jwks.json"
    ]
    assert seen == ["203.0.113.7", "127.0.0.1"]


async def test_client_ip_is_not_forwarded_by_default(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn
) -> None:
    await client.post(
        "/auth/users/login",
        json={"email": "ip@example.com", "password": USER_PASSWORD},
        headers={"X-Forwarded-For": "203.0.113.7"},
    )
    assert [r["x_forwarded_for"] for r in gotrue.requests] == [None]
    assert gotrue.requests[0]["apikey"] == "standin-anon-key"


async def test_login_is_rate_limited_per_ip_with_retry_after(app_with: AppWith) -> None:
    async with app_with(rate_limit_login="3/minute") as client:
        statuses = []
        for i in range(4):
            response = await client.post(
                "/auth/users/login",
                json={"email": f"u{i}@example.com", "password": USER_PASSWORD},
            )
            statuses.append(response.status_code)
    assert statuses == [401, 401, 401, 429]
    assert response.json()["error"] == "rate_limited"
    assert int(response.headers["retry-after"]) > 0


async def test_login_is_rate_limited_per_account_across_ips(app_with: AppWith) -> None:
    async with app_with(rate_limit_login="3/minute", trust_forwarded_for=True) as client:
        statuses = []
        for i in range(4):
            response = await client.post(
                "/auth/users/login",
                json={"email": "victim@example.com", "password": "Wrong-pass-1"},
                headers={"X-Forwarded-For": f"198.51.100.{i}"},
            )
            statuses.append(response.status_code)
    assert statuses == [401, 401, 401, 429]


async def test_register_and_reset_are_rate_limited(app_with: AppWith) -> None:
    async with app_with(rate_limit_register="1/minute", rate_limit_password_reset="1/minute") as c:
        await register_user(c, "once@example.com")
        again = await c.post(
            "/auth/users/register", json={"email": "twice@example.com", "password": USER_PASSWORD}
        )
        assert again.status_code == 429
        assert (
            await c.post("/auth/users/password/reset", json={"email": "a@example.com"})
        ).status_code == 202
        limited = await c.post("/auth/users/password/reset", json={"email": "b@example.com"})
        assert limited.status_code == 429
