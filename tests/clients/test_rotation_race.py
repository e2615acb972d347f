"""Concurrent secret rotations of one client serialise: no 200 hands out a dead secret."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from auth_service.clients.models import AppClient
from auth_service.clients.secrets import SecretHasher
from tests.clients.test_admin_clients import BASE, token_status
from tests.factories import admin_headers, create_client

TRIALS = 10


async def test_two_concurrent_rotations_both_return_working_secrets(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    headers = await admin_headers(app, client)
    target_id, current = await create_client(app, roles=())
    lost = 0
    for _ in range(TRIALS):
        first, second = await asyncio.gather(
            client.post(f"{BASE}/{target_id}/secret", headers=headers),
            client.post(f"{BASE}/{target_id}/secret", headers=headers),
        )
        assert (first.status_code, second.status_code) == (200, 200)
        returned = [first.json()["client_secret"], second.json()["client_secret"]]
        # Serialised, one rotation demotes the other's secret to its grace period: both work,
        # and the secret from before the pair is gone. A lost update leaves one returned secret
        # that never works and the old one still valid.
        statuses = [await token_status(client, target_id, s) for s in returned]
        if statuses != [200, 200] or await token_status(client, target_id, current) != 401:
            lost += 1
        current = returned[0] if await _is_current(app, target_id, returned[0]) else returned[1]
    assert lost == 0, f"{lost} of {TRIALS} concurrent rotation pairs lost an update"


async def test_many_concurrent_rotations_leave_exactly_two_secrets_working(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    headers = await admin_headers(app, client)
    target_id, original = await create_client(app, roles=())
    responses = await asyncio.gather(
        *(client.post(f"{BASE}/{target_id}/secret", headers=headers) for _ in range(8))
    )
    assert [r.status_code for r in responses] == [200] * 8
    secrets = [r.json()["client_secret"] for r in responses]
    working = [s for s in secrets if await token_status(client, target_id, s) == 200]
    assert len(working) == 2
    assert await token_status(client, target_id, original) == 401


async def _is_current(app: FastAPI, client_id: object, secret: str) -> bool:
    hasher = SecretHasher(app.state.settings.client_secret_pepper.get_secret_value())
    async with app.state.session_factory() as session:
        stored = await session.scalar(
            select(AppClient.client_secret_hash).where(AppClient.id == client_id)
        )
    return hasher.verify(secret, stored)
