"""Roles CRUD under /auth/admin/roles."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI

from auth_service.rbac.constants import ROLE_NAME_RULE
from tests.factories import create_client, create_profile, create_role

ROLES = "/auth/admin/roles"


async def _create(client: httpx.AsyncClient, admin: dict[str, str], name: str) -> dict[str, object]:
    response = await client.post(ROLES, json={"name": name}, headers=admin)
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def test_create_role_is_201_with_the_role(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    response = await client.post(
        ROLES, json={"name": "billing-admin", "description": "Runs billing."}, headers=admin
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "name", "description", "is_core", "created_at", "updated_at"}
    assert body["name"] == "billing-admin"
    assert body["description"] == "Runs billing."
    assert body["is_core"] is False
    uuid.UUID(body["id"])
    fetched = await client.get(f"{ROLES}/{body['id']}", headers=admin)
    assert fetched.status_code == 200
    assert fetched.json() == body


async def test_create_role_with_a_taken_name_is_409(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await _create(client, admin, "ops")
    response = await client.post(ROLES, json={"name": "ops"}, headers=admin)
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "role_exists"
    assert body["message"] == "A role with that name already exists."
    assert body["details"] == {"name": "ops"}
    core = await client.post(ROLES, json={"name": "admin"}, headers=admin)
    assert core.status_code == 409
    assert core.json()["error"] == "role_exists"


@pytest.mark.parametrize("name", ["", "Ops", "ops team", "1ops", "ops:read", "o" * 65])
async def test_create_role_with_an_invalid_name_is_422_stating_the_rule(
    client: httpx.AsyncClient, admin: dict[str, str], name: str
) -> None:
    response = await client.post(ROLES, json={"name": name}, headers=admin)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_error"
    assert body["message"] == ROLE_NAME_RULE
    assert body["message"].startswith("Role names must be 1-64 characters of lowercase letters")
    assert body["details"] == [
        {"loc": ["body", "name"], "type": "role_name", "message": ROLE_NAME_RULE}
    ]


async def test_create_role_rejects_unknown_fields_and_missing_body(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    extra = await client.post(ROLES, json={"name": "ops", "is_core": True}, headers=admin)
    assert extra.status_code == 422
    assert extra.json()["details"][0]["loc"] == ["body", "is_core"]
    missing = await client.post(ROLES, headers=admin)
    assert missing.status_code == 422
    assert missing.json()["error"] == "validation_error"


async def test_list_roles_paginates_in_name_order(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    for name in ("team-c", "team-a", "team-b"):
        await _create(client, admin, name)
    first = await client.get(ROLES, params={"limit": 2}, headers=admin)
    assert first.status_code == 200
    body = first.json()
    assert body["total"] == 6  # 3 core roles + 3 new
    assert (body["limit"], body["offset"]) == (2, 0)
    assert [r["name"] for r in body["items"]] == ["admin", "service"]
    rest = await client.get(ROLES, params={"limit": 10, "offset": 2}, headers=admin)
    assert [r["name"] for r in rest.json()["items"]] == ["team-a", "team-b", "team-c", "user"]
    assert next(r for r in body["items"] if r["name"] == "admin")["is_core"] is True


async def test_list_roles_filters_by_name_case_insensitively_and_literally(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    for name in ("team-a", "team_b", "other"):
        await _create(client, admin, name)
    response = await client.get(ROLES, params={"name": "TEAM"}, headers=admin)
    assert response.status_code == 200
    assert [r["name"] for r in response.json()["items"]] == ["team-a", "team_b"]
    assert response.json()["total"] == 2
    # `_` and `%` are matched literally, not as LIKE wildcards.
    underscore = await client.get(ROLES, params={"name": "_"}, headers=admin)
    assert [r["name"] for r in underscore.json()["items"]] == ["team_b"]
    percent = await client.get(ROLES, params={"name": "%"}, headers=admin)
    assert percent.json() == {"items": [], "total": 0, "limit": 50, "offset": 0}


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 201}, {"offset": -1}, {"limit": "x"}, {"name": ""}]
)
async def test_list_roles_with_bad_paging_is_422(
    client: httpx.AsyncClient, admin: dict[str, str], params: dict[str, object]
) -> None:
    response = await client.get(ROLES, params=params, headers=admin)
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"


async def test_get_unknown_role_is_404_and_malformed_id_is_422(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    missing = await client.get(f"{ROLES}/{uuid.uuid4()}", headers=admin)
    assert missing.status_code == 404
    assert missing.json()["error"] == "role_not_found"
    assert missing.json()["message"] == "The role was not found."
    malformed = await client.get(f"{ROLES}/not-a-uuid", headers=admin)
    assert malformed.status_code == 422
    assert malformed.json()["details"][0]["loc"] == ["path", "role_id"]


async def test_put_role_replaces_name_and_description(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    role = await _create(client, admin, "ops")
    response = await client.put(
        f"{ROLES}/{role['id']}",
        json={"name": "operations", "description": "On call."},
        headers=admin,
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["name"], body["description"]) == (role["id"], "operations", "On call.")
    assert body["created_at"] == role["created_at"]
    assert body["updated_at"] >= role["updated_at"]
    cleared = await client.put(f"{ROLES}/{role['id']}", json={"name": "operations"}, headers=admin)
    assert cleared.json()["description"] is None
    assert (await client.get(f"{ROLES}/{role['id']}", headers=admin)).json() == cleared.json()


async def test_put_role_to_a_taken_name_is_409_and_changes_nothing(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await _create(client, admin, "ops")
    role = await _create(client, admin, "dev")
    response = await client.put(
        f"{ROLES}/{role['id']}", json={"name": "ops", "description": "x"}, headers=admin
    )
    assert response.status_code == 409
    assert response.json()["error"] == "role_exists"
    after = await client.get(f"{ROLES}/{role['id']}", headers=admin)
    assert after.json()["name"] == "dev"
    assert after.json()["description"] is None


async def test_put_unknown_role_is_404(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    response = await client.put(f"{ROLES}/{uuid.uuid4()}", json={"name": "ops"}, headers=admin)
    assert response.status_code == 404
    assert response.json()["error"] == "role_not_found"


async def test_core_roles_keep_their_name_but_take_a_description(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    listing = await client.get(ROLES, params={"name": "service"}, headers=admin)
    service = listing.json()["items"][0]
    renamed = await client.put(f"{ROLES}/{service['id']}", json={"name": "svc"}, headers=admin)
    assert renamed.status_code == 409
    assert renamed.json()["error"] == "core_role_protected"
    described = await client.put(
        f"{ROLES}/{service['id']}",
        json={"name": "service", "description": "Backends."},
        headers=admin,
    )
    assert described.status_code == 200
    assert described.json()["description"] == "Backends."
    deleted = await client.delete(f"{ROLES}/{service['id']}?force=true", headers=admin)
    assert deleted.status_code == 409
    assert deleted.json()["error"] == "core_role_protected"


async def test_delete_unassigned_role_is_204_then_404(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    role = await _create(client, admin, "ops")
    response = await client.delete(f"{ROLES}/{role['id']}", headers=admin)
    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(f"{ROLES}/{role['id']}", headers=admin)).status_code == 404
    again = await client.delete(f"{ROLES}/{role['id']}", headers=admin)
    assert again.status_code == 404
    assert again.json()["error"] == "role_not_found"


async def test_delete_role_assigned_to_a_user_is_409_unless_forced(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    role_id = await create_role(app, "ops", permissions=["ops:deploy"])
    user_id = await create_profile(app, roles=[role_id])
    refused = await client.delete(f"{ROLES}/{role_id}", headers=admin)
    assert refused.status_code == 409
    body = refused.json()
    assert body["error"] == "role_in_use"
    assert "still assigned to 1 user(s) or client(s)" in body["message"]
    assert "force=true" in body["message"]
    assert body["details"] == {"assignments": 1}
    assert (await client.get(f"{ROLES}/{role_id}", headers=admin)).status_code == 200

    forced = await client.delete(f"{ROLES}/{role_id}", params={"force": "true"}, headers=admin)
    assert forced.status_code == 204
    assert (await client.get(f"{ROLES}/{role_id}", headers=admin)).status_code == 404
    roles = await client.get(f"/auth/admin/users/{user_id}/roles", headers=admin)
    assert roles.json()["roles"] == []


async def test_delete_role_assigned_to_a_client_is_409(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    role_id = await create_role(app, "reporting")
    await create_client(app, roles=["reporting"])
    refused = await client.delete(f"{ROLES}/{role_id}", headers=admin)
    assert refused.status_code == 409
    assert refused.json()["error"] == "role_in_use"
    assert refused.json()["details"] == {"assignments": 1}
