"""Pools run dry under a burst: callers get 200 or 503 `service_busy` with Retry-After, no 500."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from auth_service.main import create_app
from tests.conftest import make_settings
from tests.factories import client_token, create_client

CONCURRENT = 300


@pytest.fixture
async def small_pools_app(
    database_url: str, clean_db: None, require_redis: str
) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        auth_service_database_url=database_url,
        redis_url=require_redis,
        database_pool_size=2,
        database_max_overflow=0,
        database_pool_timeout_seconds=0.2,
        redis_pool_size=4,
        redis_pool_timeout_seconds=0.05,
        max_requests_in_flight=0,
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_300_concurrent_admin_requests_on_small_pools_are_200_or_503_busy(
    small_pools_app: FastAPI,
) -> None:
    transport = httpx.ASGITransport(app=small_pools_app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        client_id, secret = await create_client(small_pools_app)
        headers = {"Authorization": f"Bearer {await client_token(http, client_id, secret)}"}
        responses = await asyncio.gather(
            *(http.get("/auth/admin/roles", headers=headers) for _ in range(CONCURRENT))
        )
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[200] > 0, statuses
    # Small pools and 300 at once: some must have been turned away, and properly.
    assert statuses[503] > 0, statuses
    for response in responses:
        if response.status_code == 503:
            assert response.headers["retry-after"].isdigit()
            body = response.json()
            assert body["error"] == "service_busy", body
            assert body["request_id"] == response.headers["x-request-id"]
