"""DOCS_ENABLED and METRICS_TOKEN (issue 9)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from auth_service.main import create_app
from tests.conftest import make_settings

Run = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def run(database_url: str, redis_url: str | None, clean_db: None) -> Run:
    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(
            make_settings(auth_service_database_url=database_url, redis_url=redis_url, **overrides)
        )
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                yield c

    return start


async def test_docs_can_be_turned_off(run: Run) -> None:
    async with run(docs_enabled=False) as client:
        assert (await client.get("/docs")).status_code == 404
        assert (await client.get("/openapi.json")).status_code == 404
    async with run() as client:
        assert (await client.get("/openapi.json")).status_code == 200


async def test_metrics_token_guards_metrics(run: Run) -> None:
    token = "metrics-token-for-the-test-0123456789"
    async with run(metrics_token=token) as client:
        assert (await client.get("/metrics")).status_code == 401
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        assert "http_requests" in ok.text or "# HELP" in ok.text
