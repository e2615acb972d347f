"""Browser fixtures: Debian's chromium (Playwright cannot download browsers here) and the app
served by uvicorn on a free loopback port."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from auth_service.main import create_app
from tests.conftest import make_settings
from tests.support.live import free_port, serve_in_thread

# Debian's package; CHROMIUM_PATH points elsewhere (e.g. to check the skip without uninstalling).
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# As root, in a container, with no network but loopback.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium() -> str:
    """The chromium binary; skipped with the reason when missing, failed under REQUIRE_BROWSER=1."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    reason = (
        f"browser test needs Debian's chromium at {CHROMIUM} (apt-get install chromium);"
        " CI sets REQUIRE_BROWSER=1 to make this a failure"
    )
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture
def live_url(database_url: str, redis_url: str | None, clean_db: None) -> Iterator[str]:
    """The real app under uvicorn in a daemon thread (its own event loop); its base URL."""
    port = free_port()
    settings = make_settings(
        auth_service_database_url=database_url,
        redis_url=redis_url,
        token_issuer=f"http://127.0.0.1:{port}",
    )
    with serve_in_thread(create_app(settings), port, name="browser-live-server") as url:
        yield url
