"""A real uvicorn server on loopback, for clients that speak real HTTP (Authlib, PyJWKClient)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from auth_service.config import Settings
from auth_service.main import create_app
from tests.conftest import make_settings
from tests.support.live import free_port, serve_in_thread


@dataclass(frozen=True)
class LiveServer:
    url: str
    settings: Settings


@pytest.fixture
def live_server(database_url: str, redis_url: str | None, clean_db: None) -> Iterator[LiveServer]:
    """The app under uvicorn in its own thread (its own event loop), torn down after the test."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(
        auth_service_database_url=database_url,
        redis_url=redis_url,
        token_issuer=url,
        signing_keys_refresh_seconds=1,
    )
    with serve_in_thread(create_app(settings), port):
        yield LiveServer(url, settings)
