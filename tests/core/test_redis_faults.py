"""Redis stopped, killed or frozen: every endpoint that needs it answers 503 with Retry-After
within the configured timeout, /health stays 200, and the service recovers without a restart.

The Redis here is a private redis-server started by the test (never the shared one).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import make_settings
from tests.factories import client_token, create_client
from tests.support.apps import asgi_client, running_app
from tests.support.redis_server import RedisServer, redis_server

SOCKET_TIMEOUT = 0.5
# The socket timeout, its one retry, and slack for a loaded 2-core machine.
BOUND_SECONDS = 2 * SOCKET_TIMEOUT + 1.5


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
async def faulty_app(
    database_url: str, clean_db: None, own_redis: RedisServer
) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        auth_service_database_url=database_url,
        redis_url=own_redis.url,
        redis_socket_timeout_seconds=SOCKET_TIMEOUT,
        redis_pool_timeout_seconds=0.2,
        retry_after_seconds=3,
    )
    async with running_app(settings) as application:
        yield application


@pytest.fixture
async def http(faulty_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(faulty_app) as c:
        yield c


async def _probe(
    http: httpx.AsyncClient, headers: dict[str, str], token: str, basic: httpx.BasicAuth
) -> list[str]:
    """Every Redis-backed path; returns what did not answer as it should while Redis is down."""
    problems = []
    calls = [
        ("GET", "/auth/admin/clients", {"headers": headers}),
        ("POST", "/auth/token/introspect", {"data": {"token": token}, "auth": basic}),
        ("POST", "/auth/users/login", {"json": {"email": "a@example.com", "password": "x" * 12}}),
    ]
    for method, path, kwargs in calls:
        started = time.monotonic()
        response = await http.request(method, path, **kwargs)  # type: ignore[arg-type]
        elapsed = time.monotonic() - started
        if response.status_code != 503:
            problems.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
            continue
        if response.headers.get("retry-after") != "3":
            problems.append(f"{method} {path}: Retry-After {response.headers.get('retry-after')}")
        body = response.json()
        if body.get("request_id") != response.headers.get("x-request-id") and "error" in body:
            problems.append(f"{method} {path}: request id missing from body")
        if elapsed > BOUND_SECONDS:
            problems.append(f"{method} {path}: took {elapsed:.2f}s")
    health = await http.get("/health")
    if health.status_code != 200:
        problems.append(f"/health: {health.status_code}")
    return problems


async def _healthy(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    listed = await http.get("/auth/admin/clients", headers=headers)
    assert listed.status_code == 200, listed.text
    assert (await http.get("/ready")).status_code == 200


@pytest.mark.parametrize("fault", ["stop", "kill", "pause"])
async def test_redis_fault_is_503_with_retry_after_and_recovers_without_restart(
    faulty_app: FastAPI, http: httpx.AsyncClient, own_redis: RedisServer, fault: str
) -> None:
    client_id, secret = await create_client(faulty_app)
    token = await client_token(http, client_id, secret)
    headers = {"Authorization": f"Bearer {token}"}
    await _healthy(http, headers)

    if fault == "pause":
        own_redis.pause()
    elif fault == "kill":
        own_redis.kill()
    else:
        own_redis.stop()
    try:
        problems = await _probe(http, headers, token, httpx.BasicAuth(str(client_id), secret))
        ready = await http.get("/ready")
        assert ready.status_code == 503
        assert "redis" in ready.json()["failing"]
    finally:
        if fault == "pause":
            own_redis.resume()
        else:
            own_redis.start()
    assert problems == []

    # Back without restarting the service: the same token works again at once.
    await _healthy(http, headers)
