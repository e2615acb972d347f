"""PROBE_PORT: /health and /ready from their own thread, still truthful about the event loop."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request

from auth_service.config import Settings
from auth_service.core.probes import ProbeServer
from auth_service.main import create_app
from tests.conftest import make_settings
from tests.support.live import free_port


def _get(port: int, path: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def test_the_probe_port_serves_health_and_the_readiness_checks(settings: Settings) -> None:
    port = free_port()
    app = create_app(make_settings(**{**settings.model_dump(), "probe_port": port}))
    async with app.router.lifespan_context(app):
        health = await asyncio.to_thread(_get, port, "/health")
        ready = await asyncio.to_thread(_get, port, "/ready")
        missing = await asyncio.to_thread(_get, port, "/auth/token")
    assert health == (200, {"status": "ok"})
    assert ready[0] == 200
    assert ready[1]["checks"] == {
        "database": "ok",
        **({"redis": "ok"} if settings.redis_url else {}),
    }
    assert missing[0] == 404
    # Gone with the lifespan: the port is closed.
    try:
        _get(port, "/health")
        raise AssertionError("the probe port still answers after shutdown")
    except urllib.error.URLError:
        pass


async def test_a_stalled_event_loop_fails_health_and_a_stale_readiness_fails_ready() -> None:
    probes = ProbeServer("127.0.0.1", free_port(), stall_seconds=0.3)
    probes.start()
    try:
        probes.set_ready(200, {"status": "ok"})
        assert await asyncio.to_thread(_get, probes.port, "/ready") == (200, {"status": "ok"})
        seen: list[tuple[int, dict[str, object]]] = []

        def probe_during_the_stall() -> None:
            time.sleep(0.6)
            seen.append(_get(probes.port, "/health"))
            seen.append(_get(probes.port, "/ready"))

        prober = threading.Thread(target=probe_during_the_stall)
        prober.start()
        time.sleep(1.0)  # noqa: ASYNC251 - the stall under test, as a stuck handler would
        prober.join()
        assert seen == [(503, {"status": "stalled"}), (503, {"status": "stale"})]
        await asyncio.sleep(0.05)  # the loop runs again: its heartbeat is due at once
        assert await asyncio.to_thread(_get, probes.port, "/health") == (200, {"status": "ok"})
    finally:
        await asyncio.to_thread(probes.stop)
