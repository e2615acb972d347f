"""The whole human flow against the stand-in, through the real supabase client."""

from __future__ import annotations

import httpx

from tests.factories import login_user, register_user
from tests.support.gotrue import GoTrueStandIn


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_register_login_me_refresh_logout_then_old_token_refused(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn
) -> None:
    registered = await register_user(client, "alice@example.com", username="alice")
    assert registered["status"] == "registered"
    user_id = registered["user"]["id"]

    session = await login_user(client, "alice@example.com")
    assert session["user"]["id"] == user_id

    me = await client.get("/auth/users/me", headers=bearer(session["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["user_id"] == user_id
    assert me.json()["username"] == "alice"
    assert me.json()["email"] == "alice@example.com"

    refreshed = await client.post(
        "/auth/users/token/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert new["refresh_token"] != session["refresh_token"]
    assert refreshed.headers["cache-control"] == "no-store"

    out = await client.post("/auth/users/logout", headers=bearer(new["access_token"]))
    assert out.status_code == 204, out.text

    # Still cryptographically valid until exp, but refused by our service at once.
    for token in (new["access_token"], session["access_token"]):
        refused = await client.get("/auth/users/me", headers=bearer(token))
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_token"
        assert refused.headers["www-authenticate"] == "Bearer"
