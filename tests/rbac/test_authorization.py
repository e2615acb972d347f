"""Every admin endpoint: declared permission, 401 without a valid token, 403 without the
permission, and decisions from the database now rather than from the token."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.clients.models import AppClientRole
from auth_service.main import create_app
from auth_service.rbac.endpoints import router as rbac_router
from tests.conftest import make_settings
from tests.factories import (
    admin_headers,
    client_token,
    create_client,
    create_profile,
    create_role,
    supabase_overrides,
)
from tests.support.gotrue import GoTrueStandIn

# The contract: which permission each admin endpoint needs.
EXPECTED = {
    ("GET", "/auth/admin/roles"): "roles:read",
    ("POST", "/auth/admin/roles"): "roles:write",
    ("GET", "/auth/admin/roles/{role_id}"): "roles:read",
    ("PUT", "/auth/admin/roles/{role_id}"): "roles:write",
    ("DELETE", "/auth/admin/roles/{role_id}"): "roles:write",
    ("GET", "/auth/admin/permissions"): "permissions:read",
    ("POST", "/auth/admin/permissions"): "permissions:write",
    ("GET", "/auth/admin/permissions/{permission_id}"): "permissions:read",
    ("PUT", "/auth/admin/permissions/{permission_id}"): "permissions:write",
    ("DELETE", "/auth/admin/permissions/{permission_id}"): "permissions:write",
    ("GET", "/auth/admin/roles/{role_id}/permissions"): "roles:read",
    ("POST", "/auth/admin/roles/{role_id}/permissions/{permission_id}"): "roles:write",
    ("DELETE", "/auth/admin/roles/{role_id}/permissions/{permission_id}"): "roles:write",
    ("GET", "/auth/admin/users/{user_id}/roles"): "users:read",
    ("POST", "/auth/admin/users/{user_id}/roles/{role_id}"): "users:write",
    ("DELETE", "/auth/admin/users/{user_id}/roles/{role_id}"): "users:write",
}
ENDPOINTS = sorted(EXPECTED)


def _request(method: str, path: str) -> dict[str, Any]:
    """Concrete request kwargs for a route template: random ids and a valid body."""
    url = path
    for param in ("role_id", "permission_id", "user_id"):
        url = url.replace("{" + param + "}", str(uuid.uuid4()))
    kwargs: dict[str, Any] = {"method": method, "url": url}
    creates = method == "POST" and path in ("/auth/admin/roles", "/auth/admin/permissions")
    if creates or method == "PUT":
        kwargs["json"] = {"name": "probe:x" if "/permissions" in path else "probe"}
    return kwargs


def test_every_rbac_route_is_in_the_contract() -> None:
    routes = {
        (method, route.path)
        for route in rbac_router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    assert routes == set(EXPECTED)


async def test_openapi_declares_bearer_auth_and_each_permission(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["BearerToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["BearerToken"]["description"],
    }
    for (method, path), permission in EXPECTED.items():
        operation = schema["paths"][path][method.lower()]
        # Either scheme: a pasted bearer token, or client credentials /docs exchanges itself.
        assert operation["security"] == [{"BearerToken": []}, {"ClientCredentials": []}], (
            method,
            path,
        )
        assert operation["x-required-permissions"] == [permission], (method, path)
        assert f"Requires permission `{permission}`." in operation["description"]
        assert {"401", "403"} <= set(operation["responses"]), (method, path)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_without_a_token_is_401(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(**_request(method, path))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert (body["error"], body["message"]) == ("unauthorized", "A bearer token is required.")


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_with_an_invalid_token_is_401(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    bad = {"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}
    response = await client.request(**_request(method, path), headers=bad)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"] == "invalid_token"


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_without_the_permission_is_403(
    app: FastAPI, client: httpx.AsyncClient, method: str, path: str
) -> None:
    # Every core permission except the one this endpoint needs.
    others = [p for p in set(EXPECTED.values()) if p != EXPECTED[(method, path)]]
    await create_role(app, "almost-admin", permissions=others)
    headers = await admin_headers(app, client, roles=["almost-admin"])
    response = await client.request(**_request(method, path), headers=headers)
    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "insufficient_permissions"
    assert body["message"] == f"Missing permission: {EXPECTED[(method, path)]}."
    assert body["details"] == {"required": [EXPECTED[(method, path)]]}


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_the_declared_permission_alone_is_enough(
    app: FastAPI, client: httpx.AsyncClient, method: str, path: str
) -> None:
    await create_role(app, "narrow", permissions=[EXPECTED[(method, path)]])
    headers = await admin_headers(app, client, roles=["narrow"])
    response = await client.request(**_request(method, path), headers=headers)
    # Past the permission check: the random ids are unknown, or a create succeeds.
    assert response.status_code in (200, 201, 404), response.text


async def test_a_client_loses_access_as_soon_as_its_role_is_removed(
    app: FastAPI, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    role_id = await create_role(app, "auditor", permissions=["roles:read"])
    client_id, secret = await create_client(app, roles=["auditor"])
    headers = {"Authorization": f"Bearer {await client_token(client, client_id, secret)}"}
    assert (await client.get("/auth/admin/roles", headers=headers)).status_code == 200

    await db.execute(delete(AppClientRole).where(AppClientRole.role_id == role_id))
    await db.commit()
    response = await client.get("/auth/admin/roles", headers=headers)
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_permissions"


async def test_revoking_a_permission_from_a_role_takes_effect_on_the_next_call(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    role_id = await create_role(app, "auditor", permissions=["roles:read"])
    auditor = await admin_headers(app, client, roles=["auditor"])
    assert (await client.get("/auth/admin/roles", headers=auditor)).status_code == 200
    grants = await client.get(f"/auth/admin/roles/{role_id}/permissions", headers=admin)
    perm_id = grants.json()["permissions"][0]["id"]
    revoked = await client.delete(
        f"/auth/admin/roles/{role_id}/permissions/{perm_id}", headers=admin
    )
    assert revoked.status_code == 204
    assert (await client.get("/auth/admin/roles", headers=auditor)).status_code == 403


async def test_a_revoked_admin_client_is_refused_at_once(
    app: FastAPI, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    client_id, secret = await create_client(app, roles=["admin"])
    headers = {"Authorization": f"Bearer {await client_token(client, client_id, secret)}"}
    assert (await client.get("/auth/admin/permissions", headers=headers)).status_code == 200
    await db.execute(delete(AppClientRole).where(AppClientRole.client_id == client_id))
    await db.commit()
    response = await client.post("/auth/admin/roles", json={"name": "x"}, headers=headers)
    assert response.status_code == 403


async def test_a_supabase_user_loses_admin_endpoints_when_their_role_is_removed(
    database_url: str, redis_url: str | None, gotrue: GoTrueStandIn, clean_db: None
) -> None:
    settings = make_settings(
        auth_service_database_url=database_url, redis_url=redis_url, **supabase_overrides(gotrue)
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            admin = await admin_headers(app, client)
            user = gotrue.create_user("ops@example.com", "Correct-horse-1")
            user_id = uuid.UUID(user.id)
            role_id = await create_role(app, "user-manager", permissions=["users:read"])
            await create_profile(app, user_id, roles=[role_id])
            # One token for the whole test: it still says nothing about roles.
            headers = {"Authorization": f"Bearer {gotrue.mint_token(user)}"}

            allowed = await client.get(f"/auth/admin/users/{user_id}/roles", headers=headers)
            assert allowed.status_code == 200
            assert [r["name"] for r in allowed.json()["roles"]] == ["user-manager"]

            removed = await client.delete(
                f"/auth/admin/users/{user_id}/roles/{role_id}", headers=admin
            )
            assert removed.status_code == 204
            refused = await client.get(f"/auth/admin/users/{user_id}/roles", headers=headers)
            assert refused.status_code == 403
            assert refused.json()["error"] == "insufficient_permissions"
