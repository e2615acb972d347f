"""Per-account limits besides per-IP ones (issue 9): rotating IPs does not reset them."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx

from tests.factories import login_user, register_user

AppWith = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def _from(i: int) -> dict[str, str]:
    # The test client connects from 127.0.0.1, a trusted proxy here: each request "comes
    # from" another client IP, so only a per-account key can stop it.
    return {"X-Forwarded-For": f"198.51.100.{i}"}


async def test_otp_verify_is_limited_per_account_across_ips(app_with: AppWith) -> None:
    async with app_with(rate_limit_login="3/minute", trusted_proxies="127.0.0.1") as client:
        statuses = []
        for i in range(4):
            response = await client.post(
                "/auth/users/verify",
                json={"type": "email", "email": "otp@example.com", "token": f"{i:06d}"},
                headers=_from(i),
            )
            statuses.append(response.status_code)
        assert statuses[:3] == [401, 401, 401]
        assert statuses[3] == 429
        # Another account is unaffected.
        other = await client.post(
            "/auth/users/verify",
            json={"type": "email", "email": "other@example.com", "token": "123456"},
            headers=_from(9),
        )
        assert other.status_code == 401


async def test_refresh_is_limited_per_token_across_ips(app_with: AppWith) -> None:
    async with app_with(rate_limit_refresh="2/minute", trusted_proxies="127.0.0.1") as client:
        statuses = [
            (
                await client.post(
                    "/auth/users/token/refresh",
                    json={"refresh_token": "stolen-refresh-token"},
                    headers=_from(i),
                )
            ).status_code
            for i in range(3)
        ]
    assert statuses == [401, 401, 429]


async def test_mfa_verify_is_limited_per_factor_across_ips(app_with: AppWith) -> None:
    async with app_with(rate_limit_mfa_verify="2/minute", trusted_proxies="127.0.0.1") as client:
        await register_user(client, "guess@example.com")
        token = (await login_user(client, "guess@example.com"))["access_token"]
        h = {"Authorization": f"Bearer {token}"}
        factor = (await client.post("/auth/users/mfa/enroll", json={}, headers=h)).json()
        statuses = []
        for i in range(3):
            challenge = (
                await client.post(
                    "/auth/users/mfa/challenge", json={"factor_id": factor["factor_id"]}, headers=h
                )
            ).json()
            response = await client.post(
                "/auth/users/mfa/verify",
                json={
                    "factor_id": factor["factor_id"],
                    "challenge_id": challenge["challenge_id"],
                    "code": f"{i:06d}",
                },
                headers={**h, **_from(i)},
            )
            statuses.append(response.status_code)
    assert statuses == [401, 401, 429]


async def test_refresh_reuse_cuts_off_the_session_at_once(app_with: AppWith) -> None:
    async with app_with() as client:
        await register_user(client, "reuse@example.com")
        first = await login_user(client, "reuse@example.com")
        other = await login_user(client, "reuse@example.com")  # another session of the user

        async def refresh(token: str) -> httpx.Response:
            return await client.post("/auth/users/token/refresh", json={"refresh_token": token})

        second = (await refresh(first["refresh_token"])).json()
        third = (await refresh(second["refresh_token"])).json()
        me = {"Authorization": f"Bearer {third['access_token']}"}
        assert (await client.get("/auth/users/me", headers=me)).status_code == 200
        # The first refresh token replayed (stolen): upstream revokes the session, and its
        # still-unexpired access tokens are refused by us at once.
        replay = await refresh(first["refresh_token"])
        assert replay.status_code == 401
        assert replay.json()["error"] == "invalid_refresh_token"
        assert (await client.get("/auth/users/me", headers=me)).status_code == 401
        # The user's other session is untouched.
        mine = {"Authorization": f"Bearer {other['access_token']}"}
        assert (await client.get("/auth/users/me", headers=mine)).status_code == 200
