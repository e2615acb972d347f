"""Permissions CRUD under /auth/admin/permissions."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI

from auth_service.rbac.constants import CORE_PERMISSIONS, PERMISSION_NAME_RULE
from tests.factories import create_role

PERMISSIONS = "/auth/admin/permissions"


async def _create(client: httpx.AsyncClient, admin: dict[str, str], name: str) -> dict[str, object]:
    response = await client.post(PERMISSIONS, json={"name": name}, headers=admin)
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


@pytest.mark.parametrize(
    "name", ["invoices:read", "billing.invoices:export-csv", "a:b", "reports_v2:read.all"]
)
async def test_create_permission_is_201_with_the_permission(
    client: httpx.AsyncClient, admin: dict[str, str], name: str
) -> None:
    response = await client.post(
        PERMISSIONS, json={"name": name, "description": "Read invoices."}, headers=admin
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "name", "description", "is_core", "created_at", "updated_at"}
    assert (body["name"], body["description"], body["is_core"]) == (name, "Read invoices.", False)
    fetched = await client.get(f"{PERMISSIONS}/{body['id']}", headers=admin)
    assert fetched.status_code == 200
    assert fetched.json() == body


@pytest.mark.parametrize(
    "name",
    [
        "Invoices:read",  # uppercase
        "invoices:READ",
        "invoices",  # no action
        "invoices:",
        ":read",
        "invoices:read:all",  # two colons
        "invoices: read",
        " invoices:read",
        "invoices:read\n",
        "1nvoices:read",  # must start with a letter
        "invoices:*",
        "inv/oices:read",
        "invöices:read",
        "i" * 64 + ":read",  # resource longer than 63
        "",
    ],
)
async def test_invalid_permission_name_is_422_stating_the_rule(
    client: httpx.AsyncClient, admin: dict[str, str], name: str
) -> None:
    response = await client.post(PERMISSIONS, json={"name": name}, headers=admin)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_error"
    assert body["message"] == PERMISSION_NAME_RULE
    assert body["details"] == [
        {"loc": ["body", "name"], "type": "permission_name", "message": PERMISSION_NAME_RULE}
    ]
    assert "`resource:action`" in PERMISSION_NAME_RULE
    assert "lowercase" in PERMISSION_NAME_RULE


async def test_permission_name_rule_is_in_the_openapi_schema(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    name = schema["components"]["schemas"]["PermissionWrite"]["properties"]["name"]
    assert name["description"] == PERMISSION_NAME_RULE
    assert name["pattern"] == r"^[a-z][a-z0-9_.-]{0,62}:[a-z][a-z0-9_.-]{0,62}$"


async def test_create_permission_with_a_taken_name_is_409(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await _create(client, admin, "invoices:read")
    response = await client.post(PERMISSIONS, json={"name": "invoices:read"}, headers=admin)
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "permission_exists"
    assert body["message"] == "A permission with that name already exists."
    assert body["details"] == {"name": "invoices:read"}


async def test_list_permissions_paginates_and_filters(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    for name in ("invoices:write", "invoices:read", "reports:read"):
        await _create(client, admin, name)
    everything = await client.get(PERMISSIONS, params={"limit": 200}, headers=admin)
    assert everything.status_code == 200
    names = [p["name"] for p in everything.json()["items"]]
    assert names == sorted([*CORE_PERMISSIONS, "invoices:write", "invoices:read", "reports:read"])
    assert everything.json()["total"] == len(CORE_PERMISSIONS) + 3
    page = await client.get(
        PERMISSIONS, params={"name": "INVOICES", "limit": 1, "offset": 1}, headers=admin
    )
    assert page.json()["total"] == 2
    assert [p["name"] for p in page.json()["items"]] == ["invoices:write"]
    core = await client.get(PERMISSIONS, params={"name": "clients:read"}, headers=admin)
    assert core.json()["items"][0]["is_core"] is True


async def test_get_unknown_permission_is_404(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    response = await client.get(f"{PERMISSIONS}/{uuid.uuid4()}", headers=admin)
    assert response.status_code == 404
    assert response.json()["error"] == "permission_not_found"
    assert response.json()["message"] == "The permission was not found."


async def test_put_permission_renames_and_validates(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    perm = await _create(client, admin, "invoices:read")
    await _create(client, admin, "invoices:write")
    renamed = await client.put(
        f"{PERMISSIONS}/{perm['id']}",
        json={"name": "invoices:list", "description": "List invoices."},
        headers=admin,
    )
    assert renamed.status_code == 200
    assert (renamed.json()["name"], renamed.json()["description"]) == (
        "invoices:list",
        "List invoices.",
    )
    taken = await client.put(
        f"{PERMISSIONS}/{perm['id']}", json={"name": "invoices:write"}, headers=admin
    )
    assert taken.status_code == 409
    assert taken.json()["error"] == "permission_exists"
    invalid = await client.put(
        f"{PERMISSIONS}/{perm['id']}", json={"name": "Invoices:List"}, headers=admin
    )
    assert invalid.status_code == 422
    assert invalid.json()["message"] == PERMISSION_NAME_RULE
    bad_and_missing = await client.put(
        f"{PERMISSIONS}/{uuid.uuid4()}", json={"name": "Nope"}, headers=admin
    )
    assert bad_and_missing.status_code == 422  # the payload is judged before the lookup
    missing = await client.put(f"{PERMISSIONS}/{uuid.uuid4()}", json={"name": "x:y"}, headers=admin)
    assert missing.status_code == 404
    assert missing.json()["error"] == "permission_not_found"
    final = await client.get(f"{PERMISSIONS}/{perm['id']}", headers=admin)
    assert final.json()["name"] == "invoices:list"


async def test_core_permissions_cannot_be_renamed_or_deleted(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    listing = await client.get(PERMISSIONS, params={"name": "roles:write"}, headers=admin)
    core = listing.json()["items"][0]
    renamed = await client.put(
        f"{PERMISSIONS}/{core['id']}", json={"name": "roles:manage"}, headers=admin
    )
    assert renamed.status_code == 409
    assert renamed.json()["error"] == "core_permission_protected"
    deleted = await client.delete(f"{PERMISSIONS}/{core['id']}?force=true", headers=admin)
    assert deleted.status_code == 409
    assert deleted.json()["error"] == "core_permission_protected"


async def test_delete_permission_granted_to_a_role_is_409_unless_forced(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    role_id = await create_role(app, "accounting", permissions=["invoices:read"])
    listing = await client.get(PERMISSIONS, params={"name": "invoices:read"}, headers=admin)
    perm_id = listing.json()["items"][0]["id"]
    refused = await client.delete(f"{PERMISSIONS}/{perm_id}", headers=admin)
    assert refused.status_code == 409
    body = refused.json()
    assert body["error"] == "permission_in_use"
    assert "still granted to 1 role(s)" in body["message"]
    assert "force=true" in body["message"]
    assert body["details"] == {"grants": 1}

    forced = await client.delete(f"{PERMISSIONS}/{perm_id}?force=true", headers=admin)
    assert forced.status_code == 204
    assert (await client.get(f"{PERMISSIONS}/{perm_id}", headers=admin)).status_code == 404
    grants = await client.get(f"/auth/admin/roles/{role_id}/permissions", headers=admin)
    assert grants.json()["permissions"] == []


async def test_delete_unused_permission_is_204_then_404(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    perm = await _create(client, admin, "invoices:read")
    assert (await client.delete(f"{PERMISSIONS}/{perm['id']}", headers=admin)).status_code == 204
    again = await client.delete(f"{PERMISSIONS}/{perm['id']}", headers=admin)
    assert again.status_code == 404
    assert again.json()["error"] == "permission_not_found"
