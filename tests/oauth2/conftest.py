"""A real uvicorn server on loopback, for clients that speak real HTTP (Authlib, PyJWKClient)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn

from auth_service.config import Settings
from auth_service.main import create_app
from tests.conftest import make_settings


@dataclass(frozen=True)
class LiveServer:
    url: str
    settings: Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def live_server(database_url: str, redis_url: str | None, clean_db: None) -> Iterator[LiveServer]:
    """The app under uvicorn in its own thread (its own event loop), torn down after the test."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(
        auth_service_database_url=database_url,
        redis_url=redis_url,
        token_issuer=url,
        signing_keys_refresh_seconds=1,
    )
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the live server did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(url, settings)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
