"""A CPU-bound ASGI app behind the real shedding middleware and probe server, for uvicorn.

`/work` burns a few milliseconds of CPU without yielding, as the token endpoint's cached path
does; every other path answers at once. With `PROBE_PORT` set, the service's probe server runs
beside it, as the lifespan starts it.
"""

from __future__ import annotations

import os
import time

from starlette.types import Receive, Scope, Send

from auth_service.core.shedding import LoadSheddingMiddleware

WORK_SECONDS = 0.003


async def busy(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/work":
        deadline = time.perf_counter() + WORK_SECONDS
        while time.perf_counter() < deadline:
            pass
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


app = LoadSheddingMiddleware(
    busy,
    max_in_flight=int(os.environ.get("MAX_REQUESTS_IN_FLIGHT", "100")),
)


if os.environ.get("PROBE_PORT"):
    # The probe server the service starts in its lifespan, with a readiness that is always ok.
    from auth_service.core.probes import ProbeServer

    _probes = ProbeServer("127.0.0.1", int(os.environ["PROBE_PORT"]), stall_seconds=10.0)
    _shedding = app

    async def app(scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[no-redef]
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                _probes.start()
                _probes.set_ready(200, {"status": "ok"})
                await send({"type": "lifespan.startup.complete"})
            _probes.stop()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await _shedding(scope, receive, send)
