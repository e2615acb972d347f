"""App-client admin API: CRUD, secret rotation with grace, roles, and who may call it."""

from __future__ import annotations

import base64
import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.clients.models import AppClient
from auth_service.rbac.models import Role
from tests.factories import admin_headers, client_token, create_client

BASE = "/auth/admin/clients"
GRANT = {"grant_type": "client_credentials"}


def basic(client_id: object, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def token_status(client: httpx.AsyncClient, client_id: object, secret: str) -> int:
    response = await client.post("/auth/token", data=GRANT, headers=basic(client_id, secret))
    return response.status_code


async def role_id(db: AsyncSession, name: str) -> uuid.UUID:
    found = await db.scalar(select(Role.id).where(Role.name == name))
    assert found is not None
    return found


async def test_create_shows_a_strong_urlsafe_secret_once_and_stores_only_its_hash(
    app: FastAPI, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    headers = await admin_headers(app, client)
    response = await client.post(
        BASE, json={"name": "billing", "allowed_audiences": ["https://billing"]}, headers=headers
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    secret = body["client_secret"]
    assert re.fullmatch(r"acs_[A-Za-z0-9_-]{43}", secret)  # 32 random bytes = 256 bits
    assert body["name"] == "billing"
    assert body["allowed_audiences"] == ["https://billing"]
    assert body["is_active"] is True
    assert body["roles"] == []

    stored = await db.scalar(
        select(AppClient.client_secret_hash).where(AppClient.id == uuid.UUID(body["client_id"]))
    )
    assert stored is not None
    assert secret not in stored
    assert stored.startswith("hmac-sha256$")

    read = await client.get(f"{BASE}/{body['client_id']}", headers=headers)
    assert read.status_code == 200
    assert "client_secret" not in read.json()
    assert secret not in read.text
    assert await token_status(client, body["client_id"], secret) == 200


async def test_two_clients_get_different_secrets(app: FastAPI, client: httpx.AsyncClient) -> None:
    headers = await admin_headers(app, client)
    first = await client.post(BASE, json={"name": "a"}, headers=headers)
    second = await client.post(BASE, json={"name": "b"}, headers=headers)
    assert first.json()["client_secret"] != second.json()["client_secret"]


async def test_duplicate_name_is_409(app: FastAPI, client: httpx.AsyncClient) -> None:
    headers = await admin_headers(app, client)
    assert (await client.post(BASE, json={"name": "dup"}, headers=headers)).status_code == 201
    response = await client.post(BASE, json={"name": "dup"}, headers=headers)
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "client_name_taken"
    assert set(body) >= {"error", "message", "request_id"}


async def test_malformed_payload_is_422_with_our_error_body(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    headers = await admin_headers(app, client)
    for payload in ({}, {"name": ""}, {"name": "x", "unknown": 1}, {"name": "x" * 101}):
        response = await client.post(BASE, json=payload, headers=headers)
        assert response.status_code == 422, payload
        assert response.json()["error"] == "validation_error"


async def test_list_is_paginated(app: FastAPI, client: httpx.AsyncClient) -> None:
    headers = await admin_headers(app, client)  # the caller is one client too
    for i in range(4):
        await client.post(BASE, json={"name": f"svc-{i}"}, headers=headers)
    page = await client.get(BASE, params={"limit": 2, "offset": 1}, headers=headers)
    assert page.status_code == 200
    body = page.json()
    assert body["total"] == 5
    assert (body["limit"], body["offset"]) == (2, 1)
    assert [item["name"] for item in body["items"]] == ["svc-0", "svc-1"]
    assert all("client_secret" not in item for item in body["items"])
    bad = await client.get(BASE, params={"limit": 0}, headers=headers)
    assert bad.status_code == 422


async def test_put_replaces_fields_and_renaming_onto_a_taken_name_is_409(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    headers = await admin_headers(app, client)
    created = (await client.post(BASE, json={"name": "one"}, headers=headers)).json()
    await client.post(BASE, json={"name": "two"}, headers=headers)
    url = f"{BASE}/{created['client_id']}"

    updated = await client.put(
        url,
        json={"name": "uno", "description": "d", "allowed_audiences": ["x", "x", "y"]},
        headers=headers,
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["name"] == "uno"
    assert updated.json()["allowed_audiences"] == ["x", "y"]
    assert updated.json()["description"] == "d"

    clash = await client.put(url, json={"name": "two"}, headers=headers)
    assert clash.status_code == 409
    assert clash.json()["error"] == "client_name_taken"


async def test_unknown_client_ids_are_404(app: FastAPI, client: httpx.AsyncClient) -> None:
    headers = await admin_headers(app, client)
    missing = f"{BASE}/{uuid.uuid4()}"
    admin_role = str(uuid.uuid4())
    calls = [
        client.get(missing, headers=headers),
        client.put(missing, json={"name": "n"}, headers=headers),
        client.delete(missing, headers=headers),
        client.post(f"{missing}/secret", headers=headers),
        client.post(f"{missing}/roles/{admin_role}", headers=headers),
        client.delete(f"{missing}/roles/{admin_role}", headers=headers),
    ]
    for call in calls:
        response = await call
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "client_not_found"


async def test_missing_token_is_401_and_token_without_permission_is_403(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await client.get(BASE)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"] == "unauthorized"

    garbage = await client.get(BASE, headers={"Authorization": "Bearer nope"})
    assert garbage.status_code == 401
    assert garbage.json()["error"] == "invalid_token"

    service_headers = await admin_headers(app, client, roles=("service",))
    for call in (
        client.get(BASE, headers=service_headers),
        client.post(BASE, json={"name": "x"}, headers=service_headers),
    ):
        forbidden = await call
        assert forbidden.status_code == 403
        assert forbidden.json()["error"] == "insufficient_permissions"


async def test_read_permission_does_not_allow_writes(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    client_id, secret = await create_client(app, roles=("admin",))
    token = await client_token(client, client_id, secret, scope="clients:read")
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get(BASE, headers=headers)).status_code == 200
    # Permissions come from the database, not the narrowed token: admin may still write.
    assert (await client.post(BASE, json={"name": "x"}, headers=headers)).status_code == 201

    reader_id, reader_secret = await create_client(app, roles=("service",))
    reader = {"Authorization": f"Bearer {await client_token(client, reader_id, reader_secret)}"}
    assert (await client.post(BASE, json={"name": "y"}, headers=reader)).status_code == 403


async def test_rotation_keeps_the_old_secret_valid_during_the_grace_period(
    app: FastAPI, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    headers = await admin_headers(app, client)
    target_id, old_secret = await create_client(app, roles=())

    rotated = await client.post(f"{BASE}/{target_id}/secret", headers=headers)
    assert rotated.status_code == 200, rotated.text
    assert rotated.headers["cache-control"] == "no-store"
    new_secret = rotated.json()["client_secret"]
    assert new_secret != old_secret
    grace_until = datetime.fromisoformat(rotated.json()["previous_secret_expires_at"])
    expected = datetime.now(UTC) + timedelta(seconds=86_400)
    assert abs((grace_until - expected).total_seconds()) < 60

    assert await token_status(client, target_id, old_secret) == 200
    assert await token_status(client, target_id, new_secret) == 200
    read = await client.get(f"{BASE}/{target_id}", headers=headers)
    assert read.json()["secret_rotation_grace_until"] is not None

    # The grace period ends: only the new secret works.
    await db.execute(
        update(AppClient)
        .where(AppClient.id == target_id)
        .values(previous_secret_expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    await db.commit()
    assert await token_status(client, target_id, old_secret) == 401
    assert await token_status(client, target_id, new_secret) == 200
    read = await client.get(f"{BASE}/{target_id}", headers=headers)
    assert read.json()["secret_rotation_grace_until"] is None


async def test_a_second_rotation_ends_the_first_secrets_grace(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    headers = await admin_headers(app, client)
    target_id, first = await create_client(app, roles=())
    second = (await client.post(f"{BASE}/{target_id}/secret", headers=headers)).json()
    third = (await client.post(f"{BASE}/{target_id}/secret", headers=headers)).json()
    assert await token_status(client, target_id, first) == 401
    assert await token_status(client, target_id, second["client_secret"]) == 200
    assert await token_status(client, target_id, third["client_secret"]) == 200


async def test_assigning_and_removing_roles_changes_token_permissions(
    app: FastAPI, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    headers = await admin_headers(app, client)
    target_id, secret = await create_client(app, roles=())
    admin_id = await role_id(db, "admin")

    assigned = await client.post(f"{BASE}/{target_id}/roles/{admin_id}", headers=headers)
    assert assigned.status_code == 200, assigned.text
    assert [r["name"] for r in assigned.json()["roles"]] == ["admin"]
    again = await client.post(f"{BASE}/{target_id}/roles/{admin_id}", headers=headers)
    assert again.status_code == 200  # idempotent

    token = await client_token(client, target_id, secret)
    assert (await client.get(BASE, headers={"Authorization": f"Bearer {token}"})).status_code == 200

    removed = await client.delete(f"{BASE}/{target_id}/roles/{admin_id}", headers=headers)
    assert removed.status_code == 200
    assert removed.json()["roles"] == []
    # Like every other removal: what is not assigned cannot be removed.
    again_removed = await client.delete(f"{BASE}/{target_id}/roles/{admin_id}", headers=headers)
    assert again_removed.status_code == 404
    assert again_removed.json()["error"] == "assignment_not_found"
    # The old token still names admin, but permissions are loaded from the database.
    after = await client.get(BASE, headers={"Authorization": f"Bearer {token}"})
    assert after.status_code == 403


async def test_unknown_role_is_404(app: FastAPI, client: httpx.AsyncClient) -> None:
    headers = await admin_headers(app, client)
    target_id, _ = await create_client(app, roles=())
    response = await client.post(f"{BASE}/{target_id}/roles/{uuid.uuid4()}", headers=headers)
    assert response.status_code == 404
    assert response.json()["error"] == "role_not_found"


async def _introspect(
    client: httpx.AsyncClient, token: str, auth: tuple[uuid.UUID, str]
) -> dict[str, object]:
    response = await client.post(
        "/auth/token/introspect", data={"token": token}, headers=basic(*auth)
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_deactivating_a_client_kills_its_tokens_at_once(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    headers = await admin_headers(app, client)
    observer = await create_client(app, roles=())
    target_id, secret = await create_client(app, roles=("admin",), name="target")
    token = await client_token(client, target_id, secret)
    target_headers = {"Authorization": f"Bearer {token}"}
    assert (await _introspect(client, token, observer))["active"] is True
    assert (await client.get(BASE, headers=target_headers)).status_code == 200

    response = await client.put(
        f"{BASE}/{target_id}", json={"name": "target", "is_active": False}, headers=headers
    )
    assert response.status_code == 200
    assert response.json()["is_active"] is False

    assert await _introspect(client, token, observer) == {"active": False}
    denied = await client.get(BASE, headers=target_headers)
    assert denied.status_code == 401
    assert await token_status(client, target_id, secret) == 401

    # Reactivation restores it (the token itself was never revoked).
    await client.put(f"{BASE}/{target_id}", json={"name": "target"}, headers=headers)
    assert (await _introspect(client, token, observer))["active"] is True


@pytest.mark.parametrize("roles", [("admin",), ()])
async def test_deleting_a_client_kills_its_tokens_at_once(
    app: FastAPI, client: httpx.AsyncClient, roles: tuple[str, ...]
) -> None:
    headers = await admin_headers(app, client)
    observer = await create_client(app, roles=())
    target_id, secret = await create_client(app, roles=roles)
    token = await client_token(client, target_id, secret)

    deleted = await client.delete(f"{BASE}/{target_id}", headers=headers)
    assert deleted.status_code == 204
    assert await _introspect(client, token, observer) == {"active": False}
    response = await client.get(BASE, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert (await client.get(f"{BASE}/{target_id}", headers=headers)).status_code == 404


async def test_openapi_documents_the_permission_of_each_client_route(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert paths[BASE]["post"]["x-required-permissions"] == ["clients:write"]
    assert paths[BASE]["get"]["x-required-permissions"] == ["clients:read"]
    assert paths[BASE + "/{client_id}/secret"]["post"]["x-required-permissions"] == [
        "clients:write"
    ]
    token_body = paths["/auth/token"]["post"]["requestBody"]["content"]
    assert set(token_body) == {"application/x-www-form-urlencoded", "application/json"}
