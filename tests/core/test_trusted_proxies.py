"""TRUSTED_PROXIES: the client IP is the right-most X-Forwarded-For entry not a trusted proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.main import create_app
from tests.conftest import make_settings

Run = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def run(database_url: str, redis_url: str | None, clean_db: None) -> Run:
    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        settings = make_settings(
            auth_service_database_url=database_url,
            redis_url=redis_url,
            rate_limit_token="2/minute",
            **overrides,
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            # The connection comes from 10.1.2.3: a proxy, if the settings trust it.
            transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                yield c

    return start


GRANT = {"grant_type": "client_credentials"}


async def _statuses(client: httpx.AsyncClient, xffs: list[str]) -> list[int]:
    return [
        (await client.post("/auth/token", data=GRANT, headers={"X-Forwarded-For": x})).status_code
        for x in xffs
    ]


async def test_without_trusted_proxies_forwarded_for_is_ignored(run: Run, db: AsyncSession) -> None:
    async with run() as client:
        spoofed = ["1.1.1.1", "2.2.2.2", "3.3.3.3, 4.4.4.4"]
        assert await _statuses(client, spoofed) == [401, 401, 429]
    ips = await db.scalars(text("SELECT DISTINCT client_ip FROM auth_service_data.audit_events"))
    assert set(ips) == {"10.1.2.3"}


async def test_behind_a_trusted_proxy_spoofed_left_entries_do_not_change_the_key(
    run: Run, db: AsyncSession
) -> None:
    async with run(trusted_proxies="10.0.0.0/8") as client:
        # The proxy appends the real client (198.51.100.5); whatever the client sent before
        # it, however many entries, is not believed.
        spoofed = [f"203.0.113.{i}, 198.51.100.5" for i in range(3)]
        assert await _statuses(client, spoofed) == [401, 401, 429]
        # A real other client behind the same proxy has its own budget; chained trusted hops
        # (10.9.9.9 is another proxy of ours) are skipped from the right.
        assert await _statuses(client, ["198.51.100.6, 10.9.9.9"]) == [401]
    ips = await db.scalars(text("SELECT DISTINCT client_ip FROM auth_service_data.audit_events"))
    assert set(ips) == {"198.51.100.5", "198.51.100.6"}


async def test_an_untrusted_peer_cannot_use_forwarded_for_even_when_proxies_are_set(
    run: Run,
) -> None:
    async with run(trusted_proxies="192.0.2.0/24") as client:
        assert await _statuses(client, ["1.1.1.1", "2.2.2.2", "3.3.3.3"]) == [401, 401, 429]


def test_trust_forwarded_for_alone_means_private_networks() -> None:
    settings = make_settings(trust_forwarded_for=True)
    assert "10.0.0.0/8" in settings.forwarded_allow_ips
    assert make_settings().forwarded_allow_ips == []
    assert make_settings(trusted_proxies="10.0.0.0/16, 127.0.0.1").forwarded_allow_ips == [
        "10.0.0.0/16",
        "127.0.0.1",
    ]
