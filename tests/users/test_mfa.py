"""TOTP MFA through to an aal2 session."""

from __future__ import annotations

import httpx
import jwt
import pyotp

from tests.factories import login_user, register_user


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims(token: str) -> dict[str, object]:
    decoded: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return decoded


async def test_enroll_challenge_verify_gives_an_aal2_session_and_unenroll_needs_it(
    client: httpx.AsyncClient,
) -> None:
    await register_user(client, "mfa@example.com")
    session = await login_user(client, "mfa@example.com")
    assert claims(session["access_token"])["aal"] == "aal1"
    assert (session["aal"], session["next_aal"]) == ("aal1", "aal1")  # nothing to step up to
    headers = bearer(session["access_token"])

    enrolled = await client.post(
        "/auth/users/mfa/enroll", json={"friendly_name": "phone"}, headers=headers
    )
    assert enrolled.status_code == 200, enrolled.text
    assert enrolled.headers["cache-control"] == "no-store"
    factor = enrolled.json()
    assert factor["type"] == "totp"
    assert factor["totp"]["uri"].startswith("otpauth://totp/")

    listed = (await client.get("/auth/users/mfa/factors", headers=headers)).json()
    assert [(f["id"], f["status"], f["friendly_name"]) for f in listed] == [
        (factor["factor_id"], "unverified", "phone")
    ]

    challenge = await client.post(
        "/auth/users/mfa/challenge", json={"factor_id": factor["factor_id"]}, headers=headers
    )
    assert challenge.status_code == 200, challenge.text
    verified = await client.post(
        "/auth/users/mfa/verify",
        json={
            "factor_id": factor["factor_id"],
            "challenge_id": challenge.json()["challenge_id"],
            "code": pyotp.TOTP(factor["totp"]["secret"]).now(),
        },
        headers=headers,
    )
    assert verified.status_code == 200, verified.text
    aal2 = verified.json()
    assert claims(aal2["access_token"])["aal"] == "aal2"
    assert (aal2["aal"], aal2["next_aal"]) == ("aal2", "aal2")
    assert aal2["user"]["email"] == "mfa@example.com"

    # The new aal2 token is accepted by our local verification.
    me = await client.get("/auth/users/me", headers=bearer(aal2["access_token"]))
    assert me.status_code == 200
    listed = (await client.get("/auth/users/mfa/factors", headers=headers)).json()
    assert listed[0]["status"] == "verified"

    # A fresh aal1 session may not remove a verified factor; the aal2 session may.
    aal1 = await login_user(client, "mfa@example.com")
    # The login says a verified factor requires step-up, so a frontend knows to challenge.
    assert (aal1["aal"], aal1["next_aal"]) == ("aal1", "aal2")
    refused = await client.delete(
        f"/auth/users/mfa/factors/{factor['factor_id']}", headers=bearer(aal1["access_token"])
    )
    assert refused.status_code == 403
    assert refused.json()["error"] == "insufficient_aal"
    removed = await client.delete(
        f"/auth/users/mfa/factors/{factor['factor_id']}", headers=bearer(aal2["access_token"])
    )
    assert removed.status_code == 204
    assert (await client.get("/auth/users/mfa/factors", headers=headers)).json() == []


async def test_challenge_for_unknown_factor_is_404(client: httpx.AsyncClient) -> None:
    await register_user(client, "nofactor@example.com")
    session = await login_user(client, "nofactor@example.com")
    response = await client.post(
        "/auth/users/mfa/challenge",
        json={"factor_id": "00000000-0000-0000-0000-000000000000"},
        headers=bearer(session["access_token"]),
    )
    assert response.status_code == 404
    assert response.json()["error"] == "mfa_factor_not_found"


async def test_mfa_endpoints_need_a_user_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/users/mfa/enroll", json={})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
