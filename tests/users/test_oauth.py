"""OAuth sign-in with PKCE: redirect, signed state cookie, callback, allow-list."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.users import oauth_state
from auth_service.users.endpoints import OAUTH_COOKIE
from auth_service.users.models import Profile
from tests.support.gotrue import GoTrueStandIn

ALLOWED = "https://app.example.com/auth/done"


async def start(client: httpx.AsyncClient, redirect_to: str | None = None) -> httpx.Response:
    params = {"redirect_to": redirect_to} if redirect_to else {}
    response = await client.get("/auth/users/login/github", params=params)
    assert response.status_code == 302, response.text
    return response


async def call_back(
    client: httpx.AsyncClient,
    path: str,
    params: dict[str, str],
    cookie: str | None,
) -> httpx.Response:
    """GET our callback carrying exactly `cookie` (the client's own jar is emptied first)."""
    client.cookies.clear()
    headers = {"Cookie": f"{OAUTH_COOKIE}={cookie}"} if cookie is not None else {}
    return await client.get(path, params=params, headers=headers)


async def consent(gotrue: GoTrueStandIn, authorize_url: str) -> httpx.URL:
    """Plays the browser at Supabase (and the provider): returns our callback URL with the code."""
    async with httpx.AsyncClient() as browser:
        response = await browser.get(authorize_url)
    assert response.status_code == 302, response.text
    return httpx.URL(response.headers["location"])


async def test_start_redirects_to_authorize_with_s256_and_sets_a_tight_cookie(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn, app: FastAPI
) -> None:
    response = await start(client)
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == gotrue.issuer + "/authorize"
    query = parse_qs(location.query)
    assert query["provider"] == ["github"]
    assert query["code_challenge_method"] == ["s256"]
    callback = urlsplit(query["redirect_to"][0])
    assert callback.path == "/auth/users/login/github/callback"
    state = parse_qs(callback.query)["state"][0]

    cookie_header = response.headers["set-cookie"]
    assert "HttpOnly" in cookie_header
    assert "SameSite=lax" in cookie_header
    assert "Path=/auth/users/login/github/callback" in cookie_header
    assert "Max-Age=600" in cookie_header
    saved = oauth_state.unseal(
        response.cookies[OAUTH_COOKIE], app.state.settings.oauth_state_secret.get_secret_value()
    )
    assert saved is not None
    assert saved.state == state
    digest = hashlib.sha256(saved.code_verifier.encode()).digest()
    assert query["code_challenge"] == [base64.urlsafe_b64encode(digest).rstrip(b"=").decode()]


async def test_callback_exchanges_the_code_and_creates_the_profile(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn, db: AsyncSession
) -> None:
    gotrue.oauth_email = "octo@example.com"
    started = await start(client)
    callback = await consent(gotrue, started.headers["location"])
    response = await call_back(
        client, callback.path, dict(callback.params), started.cookies[OAUTH_COOKIE]
    )
    assert response.status_code == 200, response.text
    session = response.json()
    assert session["user"]["email"] == "octo@example.com"
    assert response.headers["cache-control"] == "no-store"
    assert 'auth_service_oauth=""' in response.headers["set-cookie"]  # cleared
    assert await db.get(Profile, uuid.UUID(session["user"]["id"])) is not None
    me = await client.get(
        "/auth/users/me", headers={"Authorization": f"Bearer {session['access_token']}"}
    )
    assert me.status_code == 200


async def test_callback_with_allowed_redirect_sends_tokens_in_the_fragment(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn
) -> None:
    started = await start(client, ALLOWED)
    callback = await consent(gotrue, started.headers["location"])
    response = await call_back(
        client, callback.path, dict(callback.params), started.cookies[OAUTH_COOKIE]
    )
    assert response.status_code == 303, response.text
    target = urlsplit(response.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == ALLOWED
    assert "access_token" in parse_qs(target.fragment)


@pytest.mark.parametrize(
    "redirect_to",
    [
        "https://evil.example.com/auth/done",
        "https://app.example.com/elsewhere",
        "https://app.example.com.evil.com/auth",
        "http://app.example.com/auth/done",
        "javascript:alert(1)",
        "https://user@app.example.com/auth/done",
    ],
)
async def test_redirect_outside_the_allow_list_is_400(
    client: httpx.AsyncClient, redirect_to: str
) -> None:
    response = await client.get("/auth/users/login/github", params={"redirect_to": redirect_to})
    assert response.status_code == 400
    assert response.json()["error"] == "redirect_not_allowed"
    assert "set-cookie" not in response.headers


async def test_missing_cookie_is_400_invalid_oauth_state(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn
) -> None:
    started = await start(client)
    callback = await consent(gotrue, started.headers["location"])
    response = await call_back(client, callback.path, dict(callback.params), None)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_oauth_state"


async def test_wrong_or_missing_state_is_400_invalid_oauth_state(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn
) -> None:
    started = await start(client)
    callback = await consent(gotrue, started.headers["location"])
    cookie = started.cookies[OAUTH_COOKIE]
    params = dict(callback.params)
    wrong = await call_back(client, callback.path, {**params, "state": "x" * 32}, cookie)
    params.pop("state")
    missing = await call_back(client, callback.path, params, cookie)
    for response in (wrong, missing):
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_oauth_state"


async def test_tampered_or_expired_cookie_is_400(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn, app: FastAPI
) -> None:
    secret = app.state.settings.oauth_state_secret.get_secret_value()
    started = await start(client)
    callback = await consent(gotrue, started.headers["location"])
    saved = oauth_state.unseal(started.cookies[OAUTH_COOKIE], secret)
    assert saved is not None
    forged = oauth_state.seal(saved, "some-other-secret")
    expired = oauth_state.seal(
        oauth_state.OAuthState(
            saved.state, saved.code_verifier, saved.provider, None, int(time.time()) - 1
        ),
        secret,
    )
    other_provider = oauth_state.seal(
        oauth_state.OAuthState(
            saved.state, saved.code_verifier, "google", None, int(time.time()) + 60
        ),
        secret,
    )
    for cookie in (forged, expired, other_provider, started.cookies[OAUTH_COOKIE] + "x"):
        response = await call_back(client, callback.path, dict(callback.params), cookie)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_oauth_state"


async def test_wrong_code_verifier_fails_pkce_with_400(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn, app: FastAPI
) -> None:
    secret = app.state.settings.oauth_state_secret.get_secret_value()
    started = await start(client)
    callback = await consent(gotrue, started.headers["location"])
    saved = oauth_state.unseal(started.cookies[OAUTH_COOKIE], secret)
    assert saved is not None
    # A valid state with someone else's verifier: Supabase's PKCE check must refuse the code.
    swapped = oauth_state.seal(
        oauth_state.OAuthState(
            saved.state, "v" * 64, saved.provider, saved.redirect_to, saved.expires_at
        ),
        secret,
    )
    response = await call_back(client, callback.path, dict(callback.params), swapped)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_oauth_code"


async def test_code_replay_is_refused(client: httpx.AsyncClient, gotrue: GoTrueStandIn) -> None:
    started = await start(client)
    callback = await consent(gotrue, started.headers["location"])
    cookie = started.cookies[OAUTH_COOKIE]
    first = await call_back(client, callback.path, dict(callback.params), cookie)
    again = await call_back(client, callback.path, dict(callback.params), cookie)
    assert first.status_code == 200
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_oauth_code"


async def test_provider_error_on_callback_is_400(
    client: httpx.AsyncClient,
) -> None:
    started = await start(client)
    state = parse_qs(
        urlsplit(parse_qs(urlsplit(started.headers["location"]).query)["redirect_to"][0]).query
    )["state"][0]
    response = await call_back(
        client,
        "/auth/users/login/github/callback",
        {"state": state, "error": "access_denied", "error_description": "<b>no</b>"},
        started.cookies[OAUTH_COOKIE],
    )
    assert response.status_code == 400
    assert response.json()["error"] == "oauth_provider_error"
    assert "<b>" not in response.text


async def test_unknown_provider_name_shape_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/auth/users/login/Git%20Hub")
    assert response.status_code == 400
