"""Above the cap on requests in flight: 503 service_busy with Retry-After at once; probes pass."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from auth_service.core.errors import RETRY_AFTER
from auth_service.core.shedding import LoadSheddingMiddleware


class Gate:
    """An ASGI app whose requests wait until the test opens the gate."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.entered = 0
        self.arrivals: asyncio.Queue[None] = asyncio.Queue()

    async def wait_for(self, count: int) -> None:
        while self.entered < count:
            await self.arrivals.get()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.entered += 1
        self.arrivals.put_nowait(None)
        await self.open.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
async def gated() -> AsyncIterator[tuple[Gate, LoadSheddingMiddleware, httpx.AsyncClient]]:
    gate = Gate()
    shedding = LoadSheddingMiddleware(gate, max_in_flight=3)
    transport = httpx.ASGITransport(app=shedding)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield gate, shedding, http


async def test_requests_past_the_cap_are_refused_at_once_and_probes_bypass(
    gated: tuple[Gate, LoadSheddingMiddleware, httpx.AsyncClient],
) -> None:
    gate, shedding, http = gated
    admitted = [asyncio.create_task(http.get("/auth/admin/roles")) for _ in range(3)]
    await gate.wait_for(3)

    refused = await http.get("/auth/token")  # answered while the three are still held
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == str(RETRY_AFTER["seconds"])
    assert refused.json()["error"] == "service_busy"
    assert shedding.shed == 1

    probe = asyncio.create_task(http.get("/health"))
    await gate.wait_for(4)  # the probe reached the app despite the cap
    gate.open.set()
    assert [r.status_code for r in await asyncio.gather(*admitted, probe)] == [200] * 4
    assert shedding.in_flight == 0
    assert (await http.get("/auth/admin/roles")).status_code == 200


async def test_a_cap_of_zero_disables_shedding() -> None:
    gate = Gate()
    gate.open.set()
    transport = httpx.ASGITransport(app=LoadSheddingMiddleware(gate, max_in_flight=0))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        responses = await asyncio.gather(*(http.get("/x") for _ in range(20)))
    assert {r.status_code for r in responses} == {200}
