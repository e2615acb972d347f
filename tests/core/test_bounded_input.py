"""Bounded input on a real server: huge tokens and bodies are refused fast, without stalling
other requests and without the body ever being held in memory (issue 9)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from auth_service.config import Settings
from auth_service.main import create_app
from tests.conftest import make_settings
from tests.support.live import free_port, serve_in_thread

CHUNK = b"x" * 65_536


@pytest.fixture
def live_url(database_url: str, redis_url: str | None, clean_db: None) -> Iterator[str]:
    settings: Settings = make_settings(auth_service_database_url=database_url, redis_url=redis_url)
    with serve_in_thread(create_app(settings), free_port(), name="bounded-input") as url:
        yield url


def _peak_rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


async def _health_latency(client: httpx.AsyncClient, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        assert (await client.get("/health")).status_code == 200
        samples.append(time.perf_counter() - started)
    return samples


async def test_a_20_mb_bearer_token_is_refused_before_parsing_and_health_stays_fast(
    live_url: str,
) -> None:
    async with httpx.AsyncClient(base_url=live_url, timeout=30) as client:
        await _health_latency(client, 5)  # warm up
        idle = statistics.median(await _health_latency(client, 20))
        huge = "Bearer " + "a" * (20 * 1024 * 1024)
        async with httpx.AsyncClient(base_url=live_url, timeout=30) as attacker:

            async def attack() -> httpx.Response:
                return await attacker.get("/auth/admin/roles", headers={"Authorization": huge})

            task = asyncio.create_task(attack())
            during = await _health_latency(client, 20)
            response = await task
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"
        assert statistics.median(during) < 25 * idle + 0.05, (idle, during)
        # Just over the limit is refused too; a normal-sized junk token gets the normal 401.
        over = await client.get(
            "/auth/admin/roles", headers={"Authorization": "Bearer " + "a" * 9000}
        )
        assert over.status_code == 401
        junk = await client.get("/auth/admin/roles", headers={"Authorization": "Bearer abc"})
        assert junk.status_code == 401


async def test_a_200_mb_chunked_body_is_refused_early_without_buffering(live_url: str) -> None:
    sent = 0
    total = 200 * 1024 * 1024

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        while sent < total:
            sent += len(CHUNK)
            yield CHUNK

    async with httpx.AsyncClient(base_url=live_url, timeout=30) as client:
        await _health_latency(client, 5)
        idle = statistics.median(await _health_latency(client, 20))
        before = _peak_rss_kib()
        async with httpx.AsyncClient(base_url=live_url, timeout=30) as attacker:

            async def attack() -> int | None:
                try:
                    response = await attacker.post(
                        "/auth/admin/roles",
                        content=body(),
                        headers={"Content-Type": "application/json"},
                    )
                except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
                    return None  # the server closed the connection on us: refused as well
                return response.status_code

            started = time.perf_counter()
            task = asyncio.create_task(attack())
            during = await _health_latency(client, 20)
            status = await task
            elapsed = time.perf_counter() - started
        assert status in (413, None)
        # Refused after about the limit (1 MiB), not after reading 200 MB.
        assert sent < 32 * 1024 * 1024, sent
        assert elapsed < 30
        assert statistics.median(during) < 25 * idle + 0.05, (idle, during)
        assert _peak_rss_kib() - before < 64 * 1024  # never held the body


async def test_content_length_over_the_limit_is_413_before_reading(live_url: str) -> None:
    # Only the headers are sent: the answer comes without waiting for a single body byte.
    host, port = live_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2097152\r\n\r\n"
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    writer.close()
    assert head.startswith(b"HTTP/1.1 413 "), head


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 50_000 + b"]" * 50_000,
        b'{"grant_type": "client_credentials", "grant_type": "password"}',
        b"\xff\xfe\x00{",
        '{"grant_type": "client_credentials\ud800"}'.encode("utf-8", "surrogatepass"),
        b'{"a": ' * 5000 + b"1" + b"}" * 5000,
    ],
)
async def test_pathological_bodies_are_4xx_never_5xx(live_url: str, body: bytes) -> None:
    async with httpx.AsyncClient(base_url=live_url, timeout=10) as client:
        for path in ("/auth/token", "/auth/token/introspect", "/auth/admin/roles"):
            response = await client.post(
                path, content=body, headers={"Content-Type": "application/json"}
            )
            assert 400 <= response.status_code < 500, (path, response.status_code, response.text)
