"""The privilege ceiling: a caller hands out, and acts on, only what it holds (issue 9)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.rbac.models import Permission, Role
from tests.factories import (
    admin_headers,
    client_token,
    create_client,
    create_profile,
    create_role,
)


async def _id(db: AsyncSession, model: type[Role] | type[Permission], name: str) -> uuid.UUID:
    found = await db.scalar(select(model.id).where(model.name == name))
    assert found is not None
    return found


async def _caller(
    app: FastAPI, client: httpx.AsyncClient, *permissions: str
) -> tuple[uuid.UUID, dict[str, str]]:
    """A client holding exactly `permissions` (through one custom role); id and headers."""
    role = f"r-{uuid.uuid4().hex[:8]}"
    await create_role(app, role, permissions)
    client_id, secret = await create_client(app, roles=[role])
    token = await client_token(client, client_id, secret)
    return client_id, {"Authorization": f"Bearer {token}"}


def _refused(response: httpx.Response, *missing: str) -> None:
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["error"] == "privilege_ceiling"
    for name in missing:
        assert name in body["details"]["missing_permissions"] + body["details"]["missing_roles"]
        assert name in body["message"]


async def _denials(db: AsyncSession, actor_id: uuid.UUID) -> list[tuple[str, str, str]]:
    rows = await db.execute(
        text(
            "SELECT action, outcome, details->>'attempted' FROM auth_service_data.audit_events"
            " WHERE actor_id = :a AND outcome = 'denied'"
        ),
        {"a": str(actor_id)},
    )
    return [tuple(row) for row in rows]  # type: ignore[misc]


async def test_clients_writer_cannot_make_itself_admin_but_an_admin_can(
    app: FastAPI, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    me, headers = await _caller(app, client, "clients:write")
    admin_role = await _id(db, Role, "admin")
    refused = await client.post(f"/auth/admin/clients/{me}/roles/{admin_role}", headers=headers)
    _refused(refused, "admin")
    assert await _denials(db, me) == [("access.privilege_ceiling", "denied", "client.role_assign")]
    admin = await admin_headers(app, client)
    allowed = await client.post(f"/auth/admin/clients/{me}/roles/{admin_role}", headers=admin)
    assert allowed.status_code == 200, allowed.text
    assert "admin" in [r["name"] for r in allowed.json()["roles"]]


async def test_a_role_is_assigned_only_by_who_holds_all_its_permissions(
    app: FastAPI, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    target, _ = await _caller(app, client)
    role = await create_role(app, "billing", ["invoices:read", "invoices:write"])
    _, weak = await _caller(app, client, "clients:write", "invoices:read")
    _refused(
        await client.post(f"/auth/admin/clients/{target}/roles/{role}", headers=weak),
        "invoices:write",
    )
    _, strong = await _caller(app, client, "clients:write", "invoices:read", "invoices:write")
    ok = await client.post(f"/auth/admin/clients/{target}/roles/{role}", headers=strong)
    assert ok.status_code == 200, ok.text


async def test_users_writer_cannot_make_a_user_admin_but_an_admin_can(
    app: FastAPI, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    user_id = await create_profile(app)
    admin_role = await _id(db, Role, "admin")
    _, headers = await _caller(app, client, "users:write", "users:read")
    url = f"/auth/admin/users/{user_id}/roles/{admin_role}"
    _refused(await client.post(url, headers=headers), "admin")
    # Holding every core permission is still not holding `admin`.
    everything = [
        "clients:read",
        "clients:write",
        "roles:read",
        "roles:write",
        "permissions:read",
        "permissions:write",
        "users:read",
        "users:write",
        "audit:read",
    ]
    _, almost = await _caller(app, client, *everything)
    _refused(await client.post(url, headers=almost), "admin")
    ok = await client.post(url, headers=await admin_headers(app, client))
    assert ok.status_code == 200, ok.text


async def test_roles_writer_cannot_grant_its_own_role_a_permission_it_lacks(
    app: FastAPI, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    me, headers = await _caller(app, client, "roles:write")
    my_role = (
        await client.get(f"/auth/admin/clients/{me}", headers=await admin_headers(app, client))
    ).json()["roles"][0]["id"]
    clients_write = await _id(db, Permission, "clients:write")
    url = f"/auth/admin/roles/{my_role}/permissions/{clients_write}"
    _refused(await client.post(url, headers=headers), "clients:write")
    _, holder = await _caller(app, client, "roles:write", "clients:write")
    ok = await client.post(url, headers=holder)
    assert ok.status_code == 200, ok.text


async def test_a_client_is_rotated_edited_or_deleted_only_by_a_superset_holder(
    app: FastAPI, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    victim, _ = await create_client(app, roles=["admin", "service"])
    _, headers = await _caller(app, client, "clients:write", "clients:read")
    base = f"/auth/admin/clients/{victim}"
    _refused(await client.post(f"{base}/secret", headers=headers))
    body = {"name": "renamed", "description": None, "allowed_audiences": [], "is_active": False}
    _refused(await client.put(base, json=body, headers=headers))
    _refused(await client.delete(base, headers=headers))
    # A client holding no more than the caller is fair game.
    peer, _ = await _caller(app, client, "clients:read")
    rotated = await client.post(f"/auth/admin/clients/{peer}/secret", headers=headers)
    assert rotated.status_code == 200, rotated.text
    deleted = await client.delete(f"/auth/admin/clients/{peer}", headers=headers)
    assert deleted.status_code == 204


async def test_admin_core_grants_are_immutable_even_for_an_admin(
    app: FastAPI, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    admin = await admin_headers(app, client)
    admin_role = await _id(db, Role, "admin")
    for name in ("roles:write", "clients:write", "audit:read"):
        perm = await _id(db, Permission, name)
        response = await client.delete(
            f"/auth/admin/roles/{admin_role}/permissions/{perm}", headers=admin
        )
        assert response.status_code == 409, response.text
        assert response.json()["error"] == "core_grant_protected"


async def test_the_last_admin_keeps_admin(
    app: FastAPI, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    only, secret = await create_client(app, roles=["admin"])
    headers = {"Authorization": f"Bearer {await client_token(client, only, secret)}"}
    admin_role = await _id(db, Role, "admin")
    url = f"/auth/admin/clients/{only}/roles/{admin_role}"
    for response in (
        await client.delete(url, headers=headers),
        await client.delete(f"/auth/admin/clients/{only}", headers=headers),
        await client.put(
            f"/auth/admin/clients/{only}",
            json={"name": "x", "description": None, "allowed_audiences": [], "is_active": False},
            headers=headers,
        ),
    ):
        assert response.status_code == 409, response.text
        assert response.json()["error"] == "last_admin"
    # With a second admin (a user), the first may step down.
    await create_profile(app, roles=[admin_role])
    removed = await client.delete(url, headers=headers)
    assert removed.status_code == 200, removed.text
    assert "admin" not in [r["name"] for r in removed.json()["roles"]]


async def test_the_last_admin_user_keeps_admin(
    app: FastAPI, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    admin_role = await _id(db, Role, "admin")
    user_id = await create_profile(app, roles=[admin_role])
    # Not even the operator takes admin from the last holder (the CLI can assign it first).
    from auth_service.rbac.errors import LastAdmin
    from auth_service.rbac.service import RbacService

    async with app.state.session_factory() as session:
        with pytest.raises(LastAdmin):
            await RbacService(session).unassign_role(user_id, admin_role)
        await session.rollback()


async def test_the_operator_is_not_bounded_by_the_ceiling(app: FastAPI, db: AsyncSession) -> None:
    from auth_service.rbac.service import RbacService

    user_id = await create_profile(app)
    admin_role = await _id(db, Role, "admin")
    async with app.state.session_factory.begin() as session:
        await RbacService(session).assign_role(user_id, admin_role)
    actor = await db.scalar(
        text(
            "SELECT actor_kind FROM auth_service_data.audit_events"
            " WHERE action = 'user.role_assign' AND target_id = :t"
        ),
        {"t": str(user_id)},
    )
    assert actor == "operator"
