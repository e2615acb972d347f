"""Admin user endpoints, reached with a human user's JWT once that user holds `admin`."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.rbac.models import Role, UserRole
from auth_service.users.models import Profile
from tests.factories import admin_headers, login_user, register_user
from tests.support.gotrue import GoTrueStandIn

AppWith = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def role_id(db: AsyncSession, name: str) -> uuid.UUID:
    found = await db.scalar(select(Role.id).where(Role.name == name))
    assert found is not None
    return found


async def make_admin_user(
    client: httpx.AsyncClient, app: FastAPI, db: AsyncSession, email: str
) -> tuple[str, str]:
    """Register a user and give them `admin` through the RBAC endpoint: (user_id, token)."""
    user_id = (await register_user(client, email))["user"]["id"]
    granted = await client.post(
        f"/auth/admin/users/{user_id}/roles/{await role_id(db, 'admin')}",
        headers=await admin_headers(app, client),
    )
    assert granted.status_code == 200, granted.text
    return user_id, (await login_user(client, email))["access_token"]


async def test_user_jwt_with_admin_role_reads_a_user_with_profile_and_roles(
    client: httpx.AsyncClient, app: FastAPI, db: AsyncSession
) -> None:
    target = await register_user(client, "target@example.com", username="tgt")
    _, token = await make_admin_user(client, app, db, "boss@example.com")
    response = await client.get(f"/auth/admin/users/{target['user']['id']}", headers=bearer(token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["email"] == "target@example.com"
    assert body["profile"]["username"] == "tgt"
    assert body["roles"] == []
    boss_id, _ = await make_admin_user(client, app, db, "boss2@example.com")
    me = await client.get(f"/auth/admin/users/{boss_id}", headers=bearer(token))
    assert me.json()["roles"] == ["admin"]


async def test_user_without_the_permission_gets_403(client: httpx.AsyncClient) -> None:
    target = await register_user(client, "t@example.com")
    await register_user(client, "plain@example.com")
    token = (await login_user(client, "plain@example.com"))["access_token"]
    response = await client.get(f"/auth/admin/users/{target['user']['id']}", headers=bearer(token))
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_permissions"
    deleted = await client.delete(
        f"/auth/admin/users/{target['user']['id']}", headers=bearer(token)
    )
    assert deleted.status_code == 403


async def test_logged_out_admin_token_is_refused_by_admin_endpoints(
    client: httpx.AsyncClient, app: FastAPI, db: AsyncSession
) -> None:
    user_id, token = await make_admin_user(client, app, db, "gone-admin@example.com")
    assert (
        await client.get(f"/auth/admin/users/{user_id}", headers=bearer(token))
    ).status_code == 200
    await client.post("/auth/users/logout", headers=bearer(token))
    refused = await client.get(f"/auth/admin/users/{user_id}", headers=bearer(token))
    assert refused.status_code == 401


async def test_unknown_user_is_404(
    client: httpx.AsyncClient, app: FastAPI, db: AsyncSession
) -> None:
    _, token = await make_admin_user(client, app, db, "a404@example.com")
    response = await client.get(f"/auth/admin/users/{uuid.uuid4()}", headers=bearer(token))
    assert response.status_code == 404
    assert response.json()["error"] == "user_not_found"
    gone = await client.delete(f"/auth/admin/users/{uuid.uuid4()}", headers=bearer(token))
    assert gone.status_code == 404


async def test_delete_removes_the_supabase_user_and_our_rows(
    client: httpx.AsyncClient, app: FastAPI, db: AsyncSession, gotrue: GoTrueStandIn
) -> None:
    _, token = await make_admin_user(client, app, db, "deleter@example.com")
    victim_id, victim_token = await make_admin_user(client, app, db, "victim@example.com")
    response = await client.delete(f"/auth/admin/users/{victim_id}", headers=bearer(token))
    assert response.status_code == 204, response.text
    assert gotrue.user_by_email("victim@example.com") is None
    db.expire_all()
    victim = uuid.UUID(victim_id)
    assert await db.get(Profile, victim) is None
    assert await db.scalar(select(UserRole).where(UserRole.user_id == victim)) is None
    after = await client.get(f"/auth/admin/users/{victim_id}", headers=bearer(token))
    assert after.status_code == 404
    # The deleted admin's still-unexpired token is cut off at once (issue 9), and never
    # recreates a profile.
    refused = await client.get("/auth/users/me", headers=bearer(victim_token))
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_token"
    db.expire_all()
    assert await db.get(Profile, victim) is None


async def test_delete_rolls_back_our_rows_when_supabase_fails(
    client: httpx.AsyncClient, app: FastAPI, db: AsyncSession, gotrue: GoTrueStandIn
) -> None:
    _, token = await make_admin_user(client, app, db, "d2@example.com")
    victim = await register_user(client, "stays@example.com")
    victim_id = victim["user"]["id"]
    gotrue.fail_next(500, "unexpected_failure", path=f"/auth/v1/admin/users/{victim_id}")
    response = await client.delete(f"/auth/admin/users/{victim_id}", headers=bearer(token))
    assert response.status_code == 503
    assert response.json()["error"] == "identity_provider_unavailable"
    db.expire_all()
    assert await db.get(Profile, uuid.UUID(victim_id)) is not None
    assert gotrue.user_by_email("stays@example.com") is not None


async def test_machine_admin_token_can_use_the_admin_user_endpoints(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    target = await register_user(client, "m@example.com")
    response = await client.get(
        f"/auth/admin/users/{target['user']['id']}", headers=await admin_headers(app, client)
    )
    assert response.status_code == 200


async def test_initial_admin_is_created_in_supabase_and_gets_admin(
    app_with: AppWith, gotrue: GoTrueStandIn
) -> None:
    overrides = {
        "initial_admin_email": "root@example.com",
        "initial_admin_password": "Root-pass-123",
    }
    async with app_with(**overrides) as client:
        user = gotrue.user_by_email("root@example.com")
        assert user is not None
        assert user.confirmed_at is not None
        token = (await login_user(client, "root@example.com", "Root-pass-123"))["access_token"]
        response = await client.get(f"/auth/admin/users/{user.id}", headers=bearer(token))
        assert response.status_code == 200, response.text
        assert response.json()["roles"] == ["admin"]
    # A restart finds the existing user instead of failing or duplicating it.
    async with app_with(**overrides) as client:
        again = gotrue.user_by_email("root@example.com")
        assert again is not None
        assert again.id == user.id
        assert len([u for u in gotrue.users.values() if u.email == "root@example.com"]) == 1
