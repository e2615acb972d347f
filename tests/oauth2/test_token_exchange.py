"""Token exchange (RFC 8693): a client trades a user's Supabase token (from the GoTrue
stand-in) for one of ours, on the user's behalf."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from joserfc.jwk import ECKey

from auth_service.config import Settings
from auth_service.rbac.models import UserRole
from tests.conftest import make_settings
from tests.factories import (
    client_token,
    create_client,
    create_role,
    login_user,
    register_user,
    supabase_overrides,
)
from tests.oauth2.test_dpop import proof
from tests.support.gotrue import GoTrueStandIn

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
AUDIENCE = "orders-api"


@pytest.fixture
def settings(database_url: str, redis_url: str | None, gotrue: GoTrueStandIn) -> Settings:
    return make_settings(
        auth_service_database_url=database_url, redis_url=redis_url, **supabase_overrides(gotrue)
    )


@pytest.fixture
async def user(app: FastAPI, client: httpx.AsyncClient) -> dict[str, Any]:
    """A signed-in user holding a role with orders:read and orders:write."""
    registered = await register_user(client)
    user_id = uuid.UUID(registered["user"]["id"])
    role_id = await create_role(app, "orders-clerk", ["orders:read", "orders:write"])
    async with app.state.session_factory.begin() as session:
        session.add(UserRole(user_id=user_id, role_id=role_id))
    session_body = await login_user(client, registered["user"]["email"])
    return {"id": str(user_id), "token": session_body["access_token"]}


async def exchanger(app: FastAPI, *, permission: bool = True) -> tuple[str, str]:
    roles: tuple[str, ...] = ("service",)
    if permission:
        name = f"exchanger-{uuid.uuid4().hex[:6]}"
        await create_role(app, name, ["tokens:exchange"])
        roles = (name,)
    client_id, secret = await create_client(app, roles=roles, audiences=(AUDIENCE, "billing"))
    return str(client_id), secret


def exchange_body(subject: str, **extra: str) -> dict[str, str]:
    return {
        "grant_type": EXCHANGE,
        "subject_token": subject,
        "subject_token_type": ACCESS,
        "audience": AUDIENCE,
        **extra,
    }


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def test_exchange_yields_a_token_for_the_user_acting_client(
    app: FastAPI, client: httpx.AsyncClient, user: dict[str, Any]
) -> None:
    auth = await exchanger(app)
    response = await client.post("/auth/token", data=exchange_body(user["token"]), auth=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["issued_token_type"] == ACCESS
    assert body["token_type"] == "Bearer"
    claims = claims_of(body["access_token"])
    assert claims["sub"] == user["id"]
    assert claims["act"] == {"sub": auth[0]}
    assert claims["client_id"] == auth[0]
    assert claims["aud"] == AUDIENCE
    assert claims["roles"] == ["orders-clerk"]
    assert claims["permissions"] == ["orders:read", "orders:write"]
    assert claims["exp"] <= claims_of(user["token"])["exp"]  # never outlives the subject

    seen = await client.post(
        "/auth/token/introspect", data={"token": body["access_token"]}, auth=auth
    )
    assert seen.json()["active"] is True
    assert seen.json()["act"] == {"sub": auth[0]}


async def test_scope_narrows_and_cannot_widen(
    app: FastAPI, client: httpx.AsyncClient, user: dict[str, Any]
) -> None:
    auth = await exchanger(app)
    narrowed = await client.post(
        "/auth/token", data=exchange_body(user["token"], scope="orders:read"), auth=auth
    )
    assert claims_of(narrowed.json()["access_token"])["permissions"] == ["orders:read"]
    # The client itself holds tokens:exchange; the user does not: no widening to it.
    for scope in ("orders:delete", "orders:read tokens:exchange"):
        wider = await client.post(
            "/auth/token", data=exchange_body(user["token"], scope=scope), auth=auth
        )
        assert wider.status_code == 400
        assert wider.json()["error"] == "invalid_scope"


async def test_a_client_without_the_permission_is_refused(
    app: FastAPI, client: httpx.AsyncClient, user: dict[str, Any]
) -> None:
    auth = await exchanger(app, permission=False)
    response = await client.post("/auth/token", data=exchange_body(user["token"]), auth=auth)
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"


@pytest.mark.parametrize("audience", [None, "auth-service", "not-allowed"])
async def test_only_the_clients_allowed_audiences(
    app: FastAPI, client: httpx.AsyncClient, user: dict[str, Any], audience: str | None
) -> None:
    auth = await exchanger(app)
    body = exchange_body(user["token"])
    if audience is None:
        del body["audience"]
    else:
        body["audience"] = audience
    response = await client.post("/auth/token", data=body, auth=auth)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"


async def test_logged_out_and_forged_subject_tokens_are_invalid_grant(
    app: FastAPI, client: httpx.AsyncClient, user: dict[str, Any]
) -> None:
    auth = await exchanger(app)
    machine = await client_token(client, *auth)
    for bad in (user["token"] + "x", machine, "not-a-token"):
        response = await client.post("/auth/token", data=exchange_body(bad), auth=auth)
        assert response.status_code == 400, bad
        assert response.json()["error"] == "invalid_grant"
    out = await client.post(
        "/auth/users/logout", headers={"Authorization": f"Bearer {user['token']}"}
    )
    assert out.status_code in (200, 204), out.text
    response = await client.post("/auth/token", data=exchange_body(user["token"]), auth=auth)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_wrong_token_types_are_invalid_request(
    app: FastAPI, client: httpx.AsyncClient, user: dict[str, Any]
) -> None:
    auth = await exchanger(app)
    for extra in (
        {"subject_token_type": "urn:ietf:params:oauth:token-type:id_token"},
        {"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"},
        {"actor_token_type": ACCESS},  # actor type without an actor token
    ):
        body = {**exchange_body(user["token"]), **extra}
        response = await client.post("/auth/token", data=body, auth=auth)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"


async def test_actor_token_must_be_the_callers_own(
    app: FastAPI, client: httpx.AsyncClient, user: dict[str, Any]
) -> None:
    auth = await exchanger(app)
    own = await client_token(client, *auth)
    ok = await client.post(
        "/auth/token",
        data=exchange_body(user["token"], actor_token=own, actor_token_type=ACCESS),
        auth=auth,
    )
    assert ok.status_code == 200, ok.text
    other_id, other_secret = await create_client(app)
    foreign = await client_token(client, other_id, other_secret)
    refused = await client.post(
        "/auth/token",
        data=exchange_body(user["token"], actor_token=foreign, actor_token_type=ACCESS),
        auth=auth,
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"


async def test_exchange_with_dpop_gives_a_bound_token(
    app: FastAPI, client: httpx.AsyncClient, user: dict[str, Any]
) -> None:
    auth = await exchanger(app)
    key = ECKey.generate_key("P-256")
    response = await client.post(
        "/auth/token", data=exchange_body(user["token"]), auth=auth, headers={"DPoP": proof(key)}
    )
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"
    assert claims_of(response.json()["access_token"])["cnf"] == {"jkt": key.thumbprint()}


async def test_an_exchanged_token_does_not_open_our_admin_api(
    app: FastAPI, client: httpx.AsyncClient, user: dict[str, Any]
) -> None:
    client_id, secret = await create_client(app, roles=("admin",), audiences=("auth-service",))
    body = exchange_body(user["token"], audience="auth-service")
    response = await client.post("/auth/token", data=body, auth=(str(client_id), secret))
    assert response.status_code == 200, response.text  # admin holds tokens:exchange
    bearer = {"Authorization": f"Bearer {response.json()['access_token']}"}
    assert (await client.get("/auth/admin/clients", headers=bearer)).status_code == 401
