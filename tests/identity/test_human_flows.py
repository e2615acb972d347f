"""The frontend's calls, unchanged, against both identity providers (see conftest.py)."""

from __future__ import annotations

import asyncio

import httpx
import jwt
import pyotp

from tests.factories import USER_PASSWORD, login_user, register_user
from tests.identity.conftest import ALLOWED_REDIRECT, Human, HumanFactory


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims(token: str) -> dict[str, object]:
    decoded: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == code, response.text


async def test_register_login_me_refresh_logout(human: Human) -> None:
    c = human.client
    registered = await register_user(c, "ada@example.com", username="ada")
    assert registered["status"] == "registered"
    session = await login_user(c, "ada@example.com")
    token = session["access_token"]
    shape = claims(token)
    for claim in ("sub", "aud", "role", "email", "session_id", "aal", "amr", "is_anonymous"):
        assert claim in shape, claim
    assert shape["aud"] == "authenticated"
    assert shape["role"] == "authenticated"
    assert shape["aal"] == "aal1"

    me = await c.get("/auth/users/me", headers=bearer(token))
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "ada"
    assert me.json()["email"] == "ada@example.com"

    refreshed = await c.post(
        "/auth/users/token/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["refresh_token"] != session["refresh_token"]
    new_token = refreshed.json()["access_token"]

    out = await c.post("/auth/users/logout", headers=bearer(new_token))
    assert out.status_code == 204
    assert_error(await c.get("/auth/users/me", headers=bearer(new_token)), 401, "invalid_token")


async def test_global_logout_refuses_every_session_and_its_refresh_tokens(human: Human) -> None:
    c = human.client
    await register_user(c, "g@example.com")
    first = await login_user(c, "g@example.com")
    second = await login_user(c, "g@example.com")
    out = await c.post(
        "/auth/users/logout", params={"scope": "global"}, headers=bearer(second["access_token"])
    )
    assert out.status_code == 204
    assert (await c.get("/auth/users/me", headers=bearer(first["access_token"]))).status_code == 401
    stale = await c.post(
        "/auth/users/token/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert_error(stale, 401, "invalid_refresh_token")


async def test_wrong_password_and_unknown_email_get_the_same_answer(human: Human) -> None:
    c = human.client
    await register_user(c, "known@example.com")
    wrong = await c.post(
        "/auth/users/login", json={"email": "known@example.com", "password": "Wrong-pass-1"}
    )
    unknown = await c.post(
        "/auth/users/login", json={"email": "nobody@example.com", "password": "Wrong-pass-1"}
    )
    assert_error(wrong, 401, "invalid_credentials")
    assert {**wrong.json(), "request_id": None} == {**unknown.json(), "request_id": None}


async def test_email_is_case_insensitive(human: Human) -> None:
    c = human.client
    await register_user(c, "Mixed.Case@Example.com")
    session = await login_user(c, "mixed.case@example.com")
    assert session["user"]["email"] == "mixed.case@example.com"


async def test_repeat_registration_is_409_with_autoconfirm(human: Human) -> None:
    await register_user(human.client, "twice@example.com")
    again = await human.client.post(
        "/auth/users/register", json={"email": "twice@example.com", "password": USER_PASSWORD}
    )
    assert_error(again, 409, "user_already_exists")


async def test_weak_password_is_422_with_reasons(human: Human) -> None:
    weak = await human.client.post(
        "/auth/users/register", json={"email": "weak@example.com", "password": "abc1"}
    )
    assert_error(weak, 422, "weak_password")
    assert "length" in weak.json()["details"]["reasons"]


async def test_refresh_reuse_of_the_parent_returns_the_current_token(human: Human) -> None:
    c = human.client
    await register_user(c, "r@example.com")
    first = await login_user(c, "r@example.com")
    second = (
        await c.post("/auth/users/token/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    replay = await c.post(
        "/auth/users/token/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert replay.status_code == 200, replay.text
    assert replay.json()["refresh_token"] == second["refresh_token"]


async def test_refresh_reuse_of_an_older_token_revokes_the_family(human: Human) -> None:
    c = human.client
    await register_user(c, "fam@example.com")
    r1 = (await login_user(c, "fam@example.com"))["refresh_token"]
    r2 = (await c.post("/auth/users/token/refresh", json={"refresh_token": r1})).json()
    r3 = (
        await c.post("/auth/users/token/refresh", json={"refresh_token": r2["refresh_token"]})
    ).json()
    stolen = await c.post("/auth/users/token/refresh", json={"refresh_token": r1})
    assert_error(stolen, 401, "invalid_refresh_token")
    # The whole session is gone, including the newest token.
    after = await c.post("/auth/users/token/refresh", json={"refresh_token": r3["refresh_token"]})
    assert_error(after, 401, "invalid_refresh_token")


async def test_unknown_refresh_token_is_401(human: Human) -> None:
    response = await human.client.post(
        "/auth/users/token/refresh", json={"refresh_token": "not-a-token"}
    )
    assert_error(response, 401, "invalid_refresh_token")


async def test_confirmation_flow_when_autoconfirm_is_off(human_with: HumanFactory) -> None:
    async with human_with(autoconfirm=False) as human:
        c = human.client
        registered = await c.post(
            "/auth/users/register",
            json={
                "email": "confirm@example.com",
                "password": USER_PASSWORD,
                "redirect_to": ALLOWED_REDIRECT + "/done",
            },
        )
        assert registered.status_code == 201, registered.text
        assert registered.json()["status"] == "confirmation_required"
        early = await c.post(
            "/auth/users/login", json={"email": "confirm@example.com", "password": USER_PASSWORD}
        )
        assert_error(early, 403, "email_not_confirmed")
        # A repeat answers exactly like the first time (no enumeration).
        repeat = await c.post(
            "/auth/users/register",
            json={"email": "confirm@example.com", "password": USER_PASSWORD},
        )
        assert repeat.status_code == 201
        assert repeat.json() == registered.json()

        mail = await human.last_email("confirm@example.com")
        assert mail["type"] == "signup"
        verified = await c.post(
            "/auth/users/verify", json={"type": "signup", "token_hash": mail["token_hash"]}
        )
        assert verified.status_code == 200, verified.text
        assert verified.json()["user"]["email_confirmed"] is True
        await login_user(c, "confirm@example.com")


async def test_magic_link_otp_is_single_use(human: Human) -> None:
    c = human.client
    await register_user(c, "otp@example.com")
    sent = await c.post("/auth/users/login/magiclink", json={"email": "otp@example.com"})
    assert sent.status_code == 202
    mail = await human.last_email("otp@example.com")
    body = {"type": "email", "email": "otp@example.com", "token": mail["token"]}
    first = await c.post("/auth/users/verify", json=body)
    assert first.status_code == 200, first.text
    assert_error(await c.post("/auth/users/verify", json=body), 401, "otp_expired")


async def test_magic_link_for_unknown_email_sends_nothing_and_answers_alike(human: Human) -> None:
    c = human.client
    await register_user(c, "k@example.com")
    known = await c.post("/auth/users/login/magiclink", json={"email": "k@example.com"})
    unknown = await c.post("/auth/users/login/magiclink", json={"email": "u@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert await human.mail_count("u@example.com") == 0


async def test_wrong_otp_is_401_otp_expired(human: Human) -> None:
    c = human.client
    await register_user(c, "bad@example.com")
    await c.post("/auth/users/login/magiclink", json={"email": "bad@example.com"})
    mail = await human.last_email("bad@example.com")
    wrong = "000000" if mail["token"] != "000000" else "111111"
    response = await c.post(
        "/auth/users/verify", json={"type": "email", "email": "bad@example.com", "token": wrong}
    )
    assert_error(response, 401, "otp_expired")


async def test_recovery_then_new_password(human: Human) -> None:
    c = human.client
    await register_user(c, "forgot@example.com")
    other = await login_user(c, "forgot@example.com")
    sent = await c.post("/auth/users/password/reset", json={"email": "forgot@example.com"})
    assert sent.status_code == 202
    mail = await human.last_email("forgot@example.com")
    assert mail["type"] == "recovery"
    session = await c.post(
        "/auth/users/verify", json={"type": "recovery", "token_hash": mail["token_hash"]}
    )
    assert session.status_code == 200, session.text
    changed = await c.post(
        "/auth/users/password/update",
        json={"password": "Brand-new-pass-2"},
        headers=bearer(session.json()["access_token"]),
    )
    assert changed.status_code == 200, changed.text
    await login_user(c, "forgot@example.com", "Brand-new-pass-2")
    old = await c.post(
        "/auth/users/login", json={"email": "forgot@example.com", "password": USER_PASSWORD}
    )
    assert_error(old, 401, "invalid_credentials")
    # The other session was signed out by the change.
    stale = await c.get("/auth/users/me", headers=bearer(other["access_token"]))
    assert stale.status_code == 401


async def test_password_reset_for_unknown_email_answers_alike(human: Human) -> None:
    response = await human.client.post(
        "/auth/users/password/reset", json={"email": "ghost@example.com"}
    )
    assert response.status_code == 202
    assert await human.mail_count("ghost@example.com") == 0


async def test_totp_enroll_challenge_verify_aal2_and_unenroll(human: Human) -> None:
    c = human.client
    await register_user(c, "mfa@example.com")
    first = await login_user(c, "mfa@example.com")
    assert (first["aal"], first["next_aal"]) == ("aal1", "aal1")  # nothing to step up to yet
    aal1 = first["access_token"]
    enrolled = await c.post(
        "/auth/users/mfa/enroll", json={"friendly_name": "phone"}, headers=bearer(aal1)
    )
    assert enrolled.status_code == 200, enrolled.text
    factor = enrolled.json()
    assert factor["totp"]["uri"].startswith("otpauth://totp/")
    assert factor["totp"]["qr_code"].startswith("data:image/svg+xml")
    factor_id = factor["factor_id"]
    challenge = await c.post(
        "/auth/users/mfa/challenge", json={"factor_id": factor_id}, headers=bearer(aal1)
    )
    assert challenge.status_code == 200, challenge.text
    challenge_id = challenge.json()["challenge_id"]

    wrong = await c.post(
        "/auth/users/mfa/verify",
        json={"factor_id": factor_id, "challenge_id": challenge_id, "code": "000000"},
        headers=bearer(aal1),
    )
    if pyotp.TOTP(factor["totp"]["secret"]).verify("000000", valid_window=1):
        pass  # one chance in ~300000 the wrong code is right
    else:
        assert_error(wrong, 401, "mfa_verification_failed")

    code = pyotp.TOTP(factor["totp"]["secret"]).now()
    verified = await c.post(
        "/auth/users/mfa/verify",
        json={"factor_id": factor_id, "challenge_id": challenge_id, "code": code},
        headers=bearer(aal1),
    )
    assert verified.status_code == 200, verified.text
    aal2 = verified.json()["access_token"]
    assert claims(aal2)["aal"] == "aal2"
    assert (verified.json()["aal"], verified.json()["next_aal"]) == ("aal2", "aal2")
    methods = [entry["method"] for entry in claims(aal2)["amr"]]  # type: ignore[attr-defined]
    assert "totp" in methods
    assert "password" in methods

    listed = (await c.get("/auth/users/mfa/factors", headers=bearer(aal2))).json()
    assert [(f["id"], f["status"]) for f in listed] == [(factor_id, "verified")]

    # Another (aal1) session of the same user may not remove a verified factor.
    stepped = await login_user(c, "mfa@example.com")
    # The login says a verified factor requires step-up, so a frontend knows to challenge.
    assert (stepped["aal"], stepped["next_aal"]) == ("aal1", "aal2")
    other = stepped["access_token"]
    assert claims(other)["aal"] == "aal1"
    refused = await c.delete(f"/auth/users/mfa/factors/{factor_id}", headers=bearer(other))
    assert_error(refused, 403, "insufficient_aal")
    removed = await c.delete(f"/auth/users/mfa/factors/{factor_id}", headers=bearer(aal2))
    assert removed.status_code == 204
    assert (await c.get("/auth/users/mfa/factors", headers=bearer(aal2))).json() == []


async def test_admin_can_read_and_delete_a_user(human: Human) -> None:
    from tests.factories import admin_headers

    c = human.client
    registered = await register_user(c, "gone@example.com", username="gone")
    user_id = registered["user"]["id"]
    headers = await admin_headers(human.app, c)
    seen = await c.get(f"/auth/admin/users/{user_id}", headers=headers)
    assert seen.status_code == 200, seen.text
    assert seen.json()["email"] == "gone@example.com"
    assert (await c.delete(f"/auth/admin/users/{user_id}", headers=headers)).status_code == 204
    assert (await c.get(f"/auth/admin/users/{user_id}", headers=headers)).status_code == 404
    again = await c.post(
        "/auth/users/login", json={"email": "gone@example.com", "password": USER_PASSWORD}
    )
    assert_error(again, 401, "invalid_credentials")


async def test_replaying_the_parent_later_depends_on_the_reuse_window(human: Human) -> None:
    """Declared difference `reuse_window`: GoTrue and the local provider honour the window."""
    c = human.client
    await register_user(c, "late@example.com")
    first = await login_user(c, "late@example.com")
    await c.post("/auth/users/token/refresh", json={"refresh_token": first["refresh_token"]})
    human.app.state.settings.refresh_token_reuse_interval_seconds = 0
    await asyncio.sleep(0.05)
    late = await c.post("/auth/users/token/refresh", json={"refresh_token": first["refresh_token"]})
    if human.differs("reuse_window"):
        assert late.status_code == 200, late.text
    else:
        assert_error(late, 401, "invalid_refresh_token")


async def test_a_banned_user_is_cut_off_and_refused_until_the_ban_is_lifted(
    human: Human,
) -> None:
    """Declared difference `ban_ends_sessions`: the local provider ends the sessions."""
    from tests.factories import admin_headers

    c = human.client
    user_id = (await register_user(c, "ban@example.com"))["user"]["id"]
    session = await login_user(c, "ban@example.com")
    headers = await admin_headers(human.app, c)
    banned = await c.post(
        f"/auth/admin/users/{user_id}/ban", json={"duration": "24h"}, headers=headers
    )
    assert banned.status_code == 200, banned.text
    assert banned.json()["banned_until"] is not None

    me = await c.get("/auth/users/me", headers=bearer(session["access_token"]))
    assert_error(me, 401, "invalid_token")
    login = await c.post(
        "/auth/users/login", json={"email": "ban@example.com", "password": USER_PASSWORD}
    )
    assert_error(login, 403, "user_banned")
    refresh = await c.post(
        "/auth/users/token/refresh", json={"refresh_token": session["refresh_token"]}
    )
    if human.differs("ban_ends_sessions"):
        assert_error(refresh, 401, "invalid_refresh_token")
    else:
        assert_error(refresh, 403, "user_banned")
    sent = await c.post("/auth/users/login/magiclink", json={"email": "ban@example.com"})
    assert sent.status_code == 202, sent.text
    mail = await human.last_email("ban@example.com")
    verified = await c.post(
        "/auth/users/verify",
        json={"type": "email", "email": "ban@example.com", "token": mail["token"]},
    )
    assert_error(verified, 403, "user_banned")

    lifted = await c.delete(f"/auth/admin/users/{user_id}/ban", headers=headers)
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["banned_until"] is None
    again = await login_user(c, "ban@example.com")
    assert again["user"]["id"] == user_id
    revived = await c.post(
        "/auth/users/token/refresh", json={"refresh_token": session["refresh_token"]}
    )
    if human.differs("ban_ends_sessions"):
        assert_error(revived, 401, "invalid_refresh_token")
    else:
        assert revived.status_code == 200, revived.text  # GoTrue kept the session
