"""Every Supabase error row maps to our stable body, by code, never passing upstream text on."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pyotp
import pytest

from tests.factories import USER_PASSWORD, login_user, register_user
from tests.support.gotrue import ANON_KEY, SERVICE_ROLE_KEY, GoTrueStandIn

AppWith = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == code
    assert body["request_id"]
    # Upstream wording and our keys never reach the caller.
    for leaked in ("forced", "Invalid login credentials", ANON_KEY, SERVICE_ROLE_KEY, "GoTrue"):
        assert leaked not in response.text
    return body


async def test_register_twice_is_409_user_already_exists(client: httpx.AsyncClient) -> None:
    await register_user(client, "dup@example.com")
    again = await client.post(
        "/auth/users/register", json={"email": "dup@example.com", "password": USER_PASSWORD}
    )
    assert_error(again, 409, "user_already_exists")


async def test_upstream_email_exists_is_409(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn
) -> None:
    gotrue.fail_next(422, "email_exists", path="/auth/v1/signup")
    response = await client.post(
        "/auth/users/register", json={"email": "e@example.com", "password": USER_PASSWORD}
    )
    assert_error(response, 409, "user_already_exists")


async def test_wrong_password_and_unknown_email_get_the_same_401(
    client: httpx.AsyncClient,
) -> None:
    await register_user(client, "bob@example.com")
    wrong = await client.post(
        "/auth/users/login", json={"email": "bob@example.com", "password": "nope-nope-1"}
    )
    unknown = await client.post(
        "/auth/users/login", json={"email": "nobody@example.com", "password": "nope-nope-1"}
    )
    first = assert_error(wrong, 401, "invalid_credentials")
    second = assert_error(unknown, 401, "invalid_credentials")
    assert first["message"] == second["message"]
    assert wrong.headers["www-authenticate"] == "Bearer"


async def test_unconfirmed_email_is_403_email_not_confirmed(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn
) -> None:
    gotrue.autoconfirm = False
    registered = await register_user(client, "pending@example.com")
    assert registered == {"status": "confirmation_required", "user": None, "session": None}
    response = await client.post(
        "/auth/users/login", json={"email": "pending@example.com", "password": USER_PASSWORD}
    )
    assert_error(response, 403, "email_not_confirmed")


async def test_repeat_signup_with_confirmation_on_looks_like_a_new_one(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn
) -> None:
    gotrue.autoconfirm = False
    first = await register_user(client, "twice@example.com")
    second = await register_user(client, "twice@example.com")
    assert first == second == {"status": "confirmation_required", "user": None, "session": None}


async def test_weak_password_is_422_with_reasons(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/users/register", json={"email": "weak@example.com", "password": "short"}
    )
    body = assert_error(response, 422, "weak_password")
    assert sorted(body["details"]["reasons"]) == ["characters", "length"]


async def test_bad_or_expired_otp_is_401_otp_expired(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/users/verify", json={"type": "email", "email": "x@example.com", "token": "123456"}
    )
    assert_error(response, 401, "otp_expired")
    by_hash = await client.post(
        "/auth/users/verify", json={"type": "magiclink", "token_hash": "f" * 56}
    )
    assert_error(by_hash, 401, "otp_expired")


async def test_refresh_token_reuse_and_unknown_are_401(client: httpx.AsyncClient) -> None:
    await register_user(client, "r@example.com")
    first = await login_user(client, "r@example.com")
    second = (
        await client.post(
            "/auth/users/token/refresh", json={"refresh_token": first["refresh_token"]}
        )
    ).json()
    third = await client.post(
        "/auth/users/token/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert third.status_code == 200
    # `first` is now older than the immediate parent: GoTrue's refresh_token_already_used.
    reused = await client.post(
        "/auth/users/token/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert_error(reused, 401, "invalid_refresh_token")
    unknown = await client.post("/auth/users/token/refresh", json={"refresh_token": "nope"})
    assert_error(unknown, 401, "invalid_refresh_token")


async def test_immediate_parent_refresh_token_reuse_is_tolerated(
    client: httpx.AsyncClient,
) -> None:
    await register_user(client, "retry@example.com")
    first = await login_user(client, "retry@example.com")
    a = await client.post(
        "/auth/users/token/refresh", json={"refresh_token": first["refresh_token"]}
    )
    b = await client.post(
        "/auth/users/token/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert a.status_code == b.status_code == 200
    assert a.json()["refresh_token"] == b.json()["refresh_token"]


@pytest.mark.parametrize("code", ["session_not_found", "bad_jwt"])
async def test_upstream_session_errors_are_401(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn, code: str
) -> None:
    await register_user(client, "s@example.com")
    session = await login_user(client, "s@example.com")
    gotrue.fail_next(403, code, path="/auth/v1/user")
    response = await client.get("/auth/users/mfa/factors", headers=bearer(session["access_token"]))
    assert_error(response, 401, "invalid_token")


async def test_session_revoked_upstream_is_401(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn
) -> None:
    await register_user(client, "gone@example.com")
    session = await login_user(client, "gone@example.com")
    with gotrue.lock:
        gotrue.sessions.clear()  # e.g. signed out from another device through Supabase
    response = await client.get("/auth/users/mfa/factors", headers=bearer(session["access_token"]))
    assert_error(response, 401, "invalid_token")


async def _aal2_user(client: httpx.AsyncClient, email: str) -> tuple[dict[str, Any], str]:
    await register_user(client, email)
    session = await login_user(client, email)
    headers = bearer(session["access_token"])
    enrolled = (await client.post("/auth/users/mfa/enroll", json={}, headers=headers)).json()
    challenge = (
        await client.post(
            "/auth/users/mfa/challenge", json={"factor_id": enrolled["factor_id"]}, headers=headers
        )
    ).json()
    verified = await client.post(
        "/auth/users/mfa/verify",
        json={
            "factor_id": enrolled["factor_id"],
            "challenge_id": challenge["challenge_id"],
            "code": pyotp.TOTP(enrolled["totp"]["secret"]).now(),
        },
        headers=headers,
    )
    assert verified.status_code == 200, verified.text
    return verified.json(), enrolled["factor_id"]


async def test_insufficient_aal_is_403_although_gotrue_says_401(
    client: httpx.AsyncClient,
) -> None:
    await _aal2_user(client, "aal@example.com")
    aal1 = await login_user(client, "aal@example.com")
    response = await client.post(
        "/auth/users/password/update",
        json={"password": "Another-pass-2"},
        headers=bearer(aal1["access_token"]),
    )
    assert_error(response, 403, "insufficient_aal")


async def test_wrong_mfa_code_is_401_mfa_verification_failed(client: httpx.AsyncClient) -> None:
    await register_user(client, "m@example.com")
    session = await login_user(client, "m@example.com")
    headers = bearer(session["access_token"])
    enrolled = (await client.post("/auth/users/mfa/enroll", json={}, headers=headers)).json()
    challenge = (
        await client.post(
            "/auth/users/mfa/challenge", json={"factor_id": enrolled["factor_id"]}, headers=headers
        )
    ).json()
    totp = pyotp.TOTP(enrolled["totp"]["secret"])
    wrong = next(c for c in (f"{n:06d}" for n in range(1000)) if not totp.verify(c, valid_window=1))
    response = await client.post(
        "/auth/users/mfa/verify",
        json={
            "factor_id": enrolled["factor_id"],
            "challenge_id": challenge["challenge_id"],
            "code": wrong,
        },
        headers=headers,
    )
    assert_error(response, 401, "mfa_verification_failed")


@pytest.mark.parametrize(
    ("path", "upstream", "call"),
    [
        ("/auth/v1/recover", "over_email_send_rate_limit", "reset"),
        ("/auth/v1/otp", "over_email_send_rate_limit", "magiclink"),
        ("/auth/v1/token", "over_request_rate_limit", "login"),
        ("/auth/v1/signup", "over_sms_send_rate_limit", "register"),
    ],
)
async def test_upstream_rate_limits_are_429_with_retry_after(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn, path: str, upstream: str, call: str
) -> None:
    gotrue.fail_next(429, upstream, path=path)
    body = {"email": "rl@example.com", "password": USER_PASSWORD}
    url = {
        "reset": "/auth/users/password/reset",
        "magiclink": "/auth/users/login/magiclink",
        "login": "/auth/users/login",
        "register": "/auth/users/register",
    }[call]
    if call in ("reset", "magiclink"):
        body.pop("password")
    response = await client.post(url, json=body)
    assert_error(response, 429, "rate_limited")
    assert int(response.headers["retry-after"]) > 0


@pytest.mark.parametrize(
    ("status", "code"), [(500, None), (500, "unexpected_failure"), (503, None)]
)
async def test_upstream_5xx_is_503_identity_provider_unavailable(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn, status: int, code: str | None
) -> None:
    gotrue.fail_next(status, code, path="/auth/v1/token")
    response = await client.post(
        "/auth/users/login", json={"email": "x@example.com", "password": USER_PASSWORD}
    )
    assert_error(response, 503, "identity_provider_unavailable")
    assert "upstream exploded" not in response.text


async def test_upstream_timeout_is_503_within_the_timeout(
    app_with: AppWith, gotrue: GoTrueStandIn
) -> None:
    async with app_with(supabase_timeout_seconds=0.3) as client:
        gotrue.fail_next(200, None, delay=1.5, path="/auth/v1/token")
        started = time.monotonic()
        response = await client.post(
            "/auth/users/login", json={"email": "x@example.com", "password": USER_PASSWORD}
        )
        assert time.monotonic() - started < 1.2
    assert_error(response, 503, "identity_provider_unavailable")


async def test_upstream_unreachable_is_503(app_with: AppWith) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening
        async with app_with(supabase_url=dead) as client:
            response = await client.post(
                "/auth/users/login", json={"email": "x@example.com", "password": USER_PASSWORD}
            )
    assert_error(response, 503, "identity_provider_unavailable")


async def test_without_supabase_human_endpoints_are_503_not_configured(
    app_with: AppWith,
) -> None:
    async with app_with(
        identity_provider="supabase", supabase_url=None, supabase_anon_key=None
    ) as client:
        response = await client.post(
            "/auth/users/login", json={"email": "x@example.com", "password": USER_PASSWORD}
        )
        me = await client.get("/auth/users/me", headers=bearer("x.y.z"))
    assert_error(response, 503, "identity_provider_not_configured")
    assert_error(me, 503, "identity_provider_not_configured")
    # It says what to set and where to read about it.
    assert "SUPABASE_URL" in response.json()["message"]
    assert "docs/supabase.md" in response.json()["message"]


async def test_malformed_payload_is_422_without_echoing_the_password(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/auth/users/login", json={"email": "not-an-email", "password": "s3cret-value"}
    )
    assert_error(response, 422, "validation_error")
    assert "s3cret-value" not in response.text
