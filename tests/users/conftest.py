from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from auth_service.config import Settings
from auth_service.main import create_app
from tests.conftest import make_settings
from tests.factories import supabase_overrides
from tests.support.gotrue import GoTrueStandIn


@pytest.fixture
def settings(database_url: str, redis_url: str | None, gotrue: GoTrueStandIn) -> Settings:
    """The app under test talks to the GoTrue stand-in."""
    return make_settings(
        auth_service_database_url=database_url, redis_url=redis_url, **supabase_overrides(gotrue)
    )


@pytest.fixture
def app_with(
    database_url: str, redis_url: str | None, gotrue: GoTrueStandIn, clean_db: None
) -> Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]:
    """Run the app with setting overrides on top of the stand-in's: `async with app_with(...)`."""

    @asynccontextmanager
    async def run(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        values = {
            "auth_service_database_url": database_url,
            "redis_url": redis_url,
            **supabase_overrides(gotrue),
        }
        values.update(overrides)
        application = create_app(make_settings(**values))
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                c.app = application  # type: ignore[attr-defined]
                yield c

    return run
