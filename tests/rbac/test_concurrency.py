"""Races the database settles: parallel creates and parallel assignments never 500."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from tests.factories import create_permission, create_profile, create_role


async def test_parallel_creates_of_one_role_name_give_one_201_and_409s(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    responses = await asyncio.gather(
        *(client.post("/auth/admin/roles", json={"name": "racer"}, headers=admin) for _ in range(8))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 7
    assert {r.json()["error"] for r in responses if r.status_code == 409} == {"role_exists"}


async def test_parallel_renames_to_one_name_give_one_200_and_409s(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    ids = [await create_permission(app, f"p{i}:read") for i in range(6)]
    responses = await asyncio.gather(
        *(
            client.put(f"/auth/admin/permissions/{pid}", json={"name": "same:name"}, headers=admin)
            for pid in ids
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * 5
    assert {r.json()["error"] for r in responses if r.status_code == 409} == {"permission_exists"}


async def test_parallel_identical_assignments_all_answer_200_with_one_body(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    role_id = await create_role(app, "support")
    user_id = await create_profile(app)
    perm_id = await create_permission(app, "tickets:read")
    user_calls = [
        client.post(f"/auth/admin/users/{user_id}/roles/{role_id}", headers=admin) for _ in range(8)
    ]
    grant_calls = [
        client.post(f"/auth/admin/roles/{role_id}/permissions/{perm_id}", headers=admin)
        for _ in range(8)
    ]
    responses = await asyncio.gather(*user_calls, *grant_calls)
    assert {r.status_code for r in responses} == {200}
    assert len({r.text for r in responses[:8]}) == 1
    assert len({r.text for r in responses[8:]}) == 1
    listed = await client.get(f"/auth/admin/users/{user_id}/roles", headers=admin)
    assert len(listed.json()["roles"]) == 1
