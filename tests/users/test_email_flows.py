"""Magic link, OTP verify, resend, password reset and update: no account enumeration."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx

from tests.factories import USER_PASSWORD, login_user, register_user
from tests.support.gotrue import GoTrueStandIn

AppWith = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_magic_link_answers_alike_for_known_and_unknown_emails(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn
) -> None:
    await register_user(client, "known@example.com")
    known = await client.post("/auth/users/login/magiclink", json={"email": "known@example.com"})
    unknown = await client.post(
        "/auth/users/login/magiclink", json={"email": "unknown@example.com"}
    )
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert "otp_disabled" not in unknown.text
    # No account was created for the unknown address (MAGIC_LINK_CREATE_USER=false).
    assert gotrue.user_by_email("unknown@example.com") is None
    assert gotrue.last_email("known@example.com")["type"] == "magiclink"


async def test_magic_link_creates_accounts_only_when_configured(
    app_with: AppWith, gotrue: GoTrueStandIn
) -> None:
    async with app_with(magic_link_create_user=True) as client:
        response = await client.post(
            "/auth/users/login/magiclink", json={"email": "newbie@example.com"}
        )
        assert response.status_code == 202
        mail = gotrue.last_email("newbie@example.com")
        verified = await client.post(
            "/auth/users/verify",
            json={"type": "email", "email": "newbie@example.com", "token": mail["token"]},
        )
        assert verified.status_code == 200, verified.text
        assert verified.json()["user"]["email"] == "newbie@example.com"


async def test_magic_link_redirect_must_be_allowed(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn
) -> None:
    await register_user(client, "r@example.com")
    bad = await client.post(
        "/auth/users/login/magiclink",
        json={"email": "r@example.com", "redirect_to": "https://evil.example.com/"},
    )
    assert bad.status_code == 400
    assert bad.json()["error"] == "redirect_not_allowed"
    good = await client.post(
        "/auth/users/login/magiclink",
        json={"email": "r@example.com", "redirect_to": "https://app.example.com/auth/cb"},
    )
    assert good.status_code == 202
    assert gotrue.last_email("r@example.com")["redirect_to"] == "https://app.example.com/auth/cb"


async def test_verify_by_otp_and_by_token_hash_and_tokens_are_single_use(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn
) -> None:
    await register_user(client, "otp@example.com")
    await client.post("/auth/users/login/magiclink", json={"email": "otp@example.com"})
    mail = gotrue.last_email("otp@example.com")
    by_code = await client.post(
        "/auth/users/verify",
        json={"type": "email", "email": "otp@example.com", "token": mail["token"]},
    )
    assert by_code.status_code == 200, by_code.text
    me = await client.get("/auth/users/me", headers=bearer(by_code.json()["access_token"]))
    assert me.status_code == 200
    replay = await client.post(
        "/auth/users/verify", json={"type": "magiclink", "token_hash": mail["token_hash"]}
    )
    assert replay.status_code == 401
    assert replay.json()["error"] == "otp_expired"


async def test_verify_needs_token_hash_or_email_and_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/users/verify", json={"type": "email", "token": "123456"})
    assert response.status_code == 422


async def test_signup_confirmation_and_resend(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn
) -> None:
    gotrue.autoconfirm = False
    await register_user(client, "confirm@example.com")
    first = gotrue.last_email("confirm@example.com", "signup")
    resent = await client.post("/auth/users/verify/resend", json={"email": "confirm@example.com"})
    unknown = await client.post("/auth/users/verify/resend", json={"email": "nobody@example.com"})
    assert resent.status_code == unknown.status_code == 202
    assert resent.json() == unknown.json()
    second = gotrue.last_email("confirm@example.com", "signup")
    assert second["token"] != first["token"] or second["token_hash"] != first["token_hash"]
    verified = await client.post(
        "/auth/users/verify", json={"type": "signup", "token_hash": second["token_hash"]}
    )
    assert verified.status_code == 200, verified.text
    assert verified.json()["user"]["email_confirmed"] is True
    assert (await login_user(client, "confirm@example.com"))["user"]["email"]


async def test_password_reset_answers_alike_and_recovery_then_update_works(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn
) -> None:
    await register_user(client, "forgot@example.com")
    known = await client.post("/auth/users/password/reset", json={"email": "forgot@example.com"})
    unknown = await client.post("/auth/users/password/reset", json={"email": "nope@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()

    mail = gotrue.last_email("forgot@example.com", "recovery")
    recovered = await client.post(
        "/auth/users/verify", json={"type": "recovery", "token_hash": mail["token_hash"]}
    )
    assert recovered.status_code == 200, recovered.text
    token = recovered.json()["access_token"]
    weak = await client.post(
        "/auth/users/password/update", json={"password": "abc"}, headers=bearer(token)
    )
    assert weak.status_code == 422
    assert weak.json()["error"] == "weak_password"
    changed = await client.post(
        "/auth/users/password/update", json={"password": "Brand-new-pass-9"}, headers=bearer(token)
    )
    assert changed.status_code == 200, changed.text
    old = await client.post(
        "/auth/users/login", json={"email": "forgot@example.com", "password": USER_PASSWORD}
    )
    assert old.status_code == 401
    await login_user(client, "forgot@example.com", "Brand-new-pass-9")


async def test_password_update_needs_authentication(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/users/password/update", json={"password": "Abcdefgh-1"})
    assert response.status_code == 401
