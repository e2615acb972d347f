"""Role -> permission and user -> role assignments under /auth/admin."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.main import create_app
from auth_service.users.models import Profile
from tests.conftest import make_settings
from tests.factories import (
    admin_headers,
    create_permission,
    create_profile,
    create_role,
    supabase_overrides,
)
from tests.support.gotrue import GoTrueStandIn


def _grant_url(role_id: object, permission_id: object) -> str:
    return f"/auth/admin/roles/{role_id}/permissions/{permission_id}"


def _user_role_url(user_id: object, role_id: object) -> str:
    return f"/auth/admin/users/{user_id}/roles/{role_id}"


# --- role -> permission ------------------------------------------------------------------


async def test_grant_permission_is_200_and_granting_again_gives_the_same_body(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    role_id = await create_role(app, "accounting")
    perm_id = await create_permission(app, "invoices:read", "Read invoices.")
    first = await client.post(_grant_url(role_id, perm_id), headers=admin)
    assert first.status_code == 200
    body = first.json()
    assert body["role"] == {"id": str(role_id), "name": "accounting"}
    assert body["permission"] == {"id": str(perm_id), "name": "invoices:read"}
    assert set(body) == {"role", "permission", "assigned_at"}
    again = await client.post(_grant_url(role_id, perm_id), headers=admin)
    assert again.status_code == 200
    assert again.json() == body

    listed = await client.get(f"/auth/admin/roles/{role_id}/permissions", headers=admin)
    assert listed.status_code == 200
    assert listed.json() == {
        "role": {"id": str(role_id), "name": "accounting"},
        "permissions": [
            {
                "id": str(perm_id),
                "name": "invoices:read",
                "description": "Read invoices.",
                "assigned_at": body["assigned_at"],
            }
        ],
    }


async def test_role_permissions_are_listed_in_name_order(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    role_id = await create_role(app, "accounting", permissions=["z:read", "a:write", "m:list"])
    listed = await client.get(f"/auth/admin/roles/{role_id}/permissions", headers=admin)
    assert [p["name"] for p in listed.json()["permissions"]] == ["a:write", "m:list", "z:read"]


async def test_grant_with_unknown_role_or_permission_is_404(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    role_id = await create_role(app, "accounting")
    perm_id = await create_permission(app, "invoices:read")
    no_role = await client.post(_grant_url(uuid.uuid4(), perm_id), headers=admin)
    assert no_role.status_code == 404
    assert no_role.json()["error"] == "role_not_found"
    no_perm = await client.post(_grant_url(role_id, uuid.uuid4()), headers=admin)
    assert no_perm.status_code == 404
    assert no_perm.json()["error"] == "permission_not_found"
    listing = await client.get(f"/auth/admin/roles/{uuid.uuid4()}/permissions", headers=admin)
    assert listing.status_code == 404
    assert listing.json()["error"] == "role_not_found"


async def test_revoke_permission_is_204_and_revoking_again_is_404(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    role_id = await create_role(app, "accounting", permissions=["invoices:read"])
    perm_id = (await client.get(f"/auth/admin/roles/{role_id}/permissions", headers=admin)).json()[
        "permissions"
    ][0]["id"]
    revoked = await client.delete(_grant_url(role_id, perm_id), headers=admin)
    assert revoked.status_code == 204
    listed = await client.get(f"/auth/admin/roles/{role_id}/permissions", headers=admin)
    assert listed.json()["permissions"] == []
    again = await client.delete(_grant_url(role_id, perm_id), headers=admin)
    assert again.status_code == 404
    assert again.json()["error"] == "assignment_not_found"
    assert again.json()["message"] == "The role does not hold that permission."
    no_role = await client.delete(_grant_url(uuid.uuid4(), perm_id), headers=admin)
    assert no_role.json()["error"] == "role_not_found"
    no_perm = await client.delete(_grant_url(role_id, uuid.uuid4()), headers=admin)
    assert no_perm.json()["error"] == "permission_not_found"


# --- user -> role ------------------------------------------------------------------------


async def test_assign_role_to_a_user_is_200_and_assigning_again_gives_the_same_body(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    role_id = await create_role(app, "support")
    user_id = await create_profile(app)
    first = await client.post(_user_role_url(user_id, role_id), headers=admin)
    assert first.status_code == 200
    body = first.json()
    assert body["user_id"] == str(user_id)
    assert body["role"] == {"id": str(role_id), "name": "support"}
    assert set(body) == {"user_id", "role", "assigned_at"}
    again = await client.post(_user_role_url(user_id, role_id), headers=admin)
    assert again.status_code == 200
    assert again.json() == body

    listed = await client.get(f"/auth/admin/users/{user_id}/roles", headers=admin)
    assert listed.status_code == 200
    assert listed.json() == {
        "user_id": str(user_id),
        "roles": [
            {
                "id": str(role_id),
                "name": "support",
                "description": None,
                "assigned_at": body["assigned_at"],
            }
        ],
    }


async def test_user_roles_are_listed_in_name_order_and_empty_when_none(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    b, a = await create_role(app, "beta"), await create_role(app, "alpha")
    user_id = await create_profile(app, roles=[b, a])
    listed = await client.get(f"/auth/admin/users/{user_id}/roles", headers=admin)
    assert [r["name"] for r in listed.json()["roles"]] == ["alpha", "beta"]
    nobody = await create_profile(app)
    empty = await client.get(f"/auth/admin/users/{nobody}/roles", headers=admin)
    assert empty.status_code == 200
    assert empty.json() == {"user_id": str(nobody), "roles": []}


async def test_unknown_user_is_404_without_supabase(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    role_id = await create_role(app, "support")
    stranger = uuid.uuid4()
    for response in (
        await client.post(_user_role_url(stranger, role_id), headers=admin),
        await client.delete(_user_role_url(stranger, role_id), headers=admin),
        await client.get(f"/auth/admin/users/{stranger}/roles", headers=admin),
    ):
        assert response.status_code == 404
        assert response.json()["error"] == "user_not_found"
        assert response.json()["message"] == "The user was not found."


async def test_assign_unknown_role_is_404(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    user_id = await create_profile(app)
    response = await client.post(_user_role_url(user_id, uuid.uuid4()), headers=admin)
    assert response.status_code == 404
    assert response.json()["error"] == "role_not_found"
    removal = await client.delete(_user_role_url(user_id, uuid.uuid4()), headers=admin)
    assert removal.status_code == 404
    assert removal.json()["error"] == "role_not_found"


async def test_unassign_role_is_204_and_unassigning_again_is_404(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    role_id = await create_role(app, "support")
    user_id = await create_profile(app, roles=[role_id])
    removed = await client.delete(_user_role_url(user_id, role_id), headers=admin)
    assert removed.status_code == 204
    listed = await client.get(f"/auth/admin/users/{user_id}/roles", headers=admin)
    assert listed.json()["roles"] == []
    again = await client.delete(_user_role_url(user_id, role_id), headers=admin)
    assert again.status_code == 404
    assert again.json()["error"] == "assignment_not_found"
    assert again.json()["message"] == "The user does not hold that role."


async def test_malformed_ids_are_422(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    response = await client.post(_user_role_url("nope", uuid.uuid4()), headers=admin)
    assert response.status_code == 422
    assert response.json()["details"][0]["loc"] == ["path", "user_id"]


# --- with Supabase configured: unknown ids are looked up through the admin API -----------


@pytest.fixture
async def supabase_client(
    database_url: str, redis_url: str | None, gotrue: GoTrueStandIn, clean_db: None
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = make_settings(
        auth_service_database_url=database_url, redis_url=redis_url, **supabase_overrides(gotrue)
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield application, c


async def test_user_known_to_supabase_gets_a_profile_and_the_role(
    supabase_client: tuple[FastAPI, httpx.AsyncClient], gotrue: GoTrueStandIn, db: AsyncSession
) -> None:
    app, client = supabase_client
    admin = await admin_headers(app, client)
    role_id = await create_role(app, "support")
    user = gotrue.create_user("grace@example.com", "Correct-horse-1")
    user_id = uuid.UUID(user.id)
    assert await db.get(Profile, user_id) is None

    response = await client.post(_user_role_url(user_id, role_id), headers=admin)
    assert response.status_code == 200
    assert response.json()["user_id"] == str(user_id)
    profile = await db.scalar(select(Profile).where(Profile.user_id == user_id))
    assert profile is not None
    assert profile.is_active is True
    assert any(r["path"].endswith(f"/admin/users/{user_id}") for r in gotrue.requests), (
        "the user was not looked up through Supabase's admin API"
    )


async def test_user_unknown_to_supabase_is_404_and_gets_no_profile(
    supabase_client: tuple[FastAPI, httpx.AsyncClient], gotrue: GoTrueStandIn, db: AsyncSession
) -> None:
    app, client = supabase_client
    admin = await admin_headers(app, client)
    role_id = await create_role(app, "support")
    stranger = uuid.uuid4()
    response = await client.post(_user_role_url(stranger, role_id), headers=admin)
    assert response.status_code == 404
    assert response.json()["error"] == "user_not_found"
    assert await db.get(Profile, stranger) is None


async def test_supabase_outage_during_lookup_is_503_and_writes_nothing(
    supabase_client: tuple[FastAPI, httpx.AsyncClient], gotrue: GoTrueStandIn, db: AsyncSession
) -> None:
    app, client = supabase_client
    admin = await admin_headers(app, client)
    role_id = await create_role(app, "support")
    user = gotrue.create_user("lin@example.com", "Correct-horse-1")
    gotrue.fail_next(500)
    response = await client.post(_user_role_url(user.id, role_id), headers=admin)
    assert response.status_code == 503
    assert response.json()["error"] == "identity_provider_unavailable"
    assert await db.get(Profile, uuid.UUID(user.id)) is None
    # Once Supabase answers again, the same call works.
    retry = await client.post(_user_role_url(user.id, role_id), headers=admin)
    assert retry.status_code == 200
