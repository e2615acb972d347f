"""Keep-alive connections hammering GET /work for a while; prints the statuses seen as JSON.

Run as a subprocess (`python -m tests.support.overload_load PORT SECONDS CONNECTIONS`), so the
load's own event loop does not delay the probes the test measures.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter


async def _hammer(port: int, until: float, seen: Counter[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = b"GET /work HTTP/1.1\r\nHost: t\r\n\r\n"
    try:
        while time.monotonic() < until:
            writer.write(request)
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = {
                k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)
            }
            await reader.readexactly(int(headers.get("content-length", "0")))
            status = head[0].split()[1]
            if status == "503":
                status += f" retry-after={headers.get('retry-after', 'missing')}"
            seen[status] += 1
    finally:
        writer.close()


async def main(port: int, seconds: float, connections: int) -> None:
    seen: Counter[str] = Counter()
    until = time.monotonic() + seconds
    await asyncio.gather(*(_hammer(port, until, seen) for _ in range(connections)))
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])))
