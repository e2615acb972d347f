"""Fixed-rate load (what wrk2 does; Debian has no wrk2): N requests/s on keep-alive sockets.

Latency is measured from each request's scheduled send time, not from when a connection
became free, so a stalled server shows up in the percentiles (no coordinated omission).
Prints one JSON line. Usage: paced.py URL RATE SECONDS BODY AUTH_HEADER
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit


async def _request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes
) -> int:
    writer.write(payload)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status


async def run(url: str, rate: int, seconds: float, body: str, auth: str) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    headers = [
        f"POST {parts.path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/x-www-form-urlencoded",
        f"Content-Length: {len(body)}",
    ]
    if auth:
        headers.append(f"Authorization: {auth}")
    payload = ("\r\n".join(headers) + "\r\n\r\n" + body).encode()

    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(64):
        pool.put_nowait(await asyncio.open_connection(host, port))
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def one(scheduled: float) -> None:
        conn = await pool.get()
        try:
            status = await _request(*conn, payload)
        finally:
            pool.put_nowait(conn)
        latencies.append(time.perf_counter() - scheduled)
        statuses[status] = statuses.get(status, 0) + 1

    total = int(rate * seconds)
    start = time.perf_counter() + 0.05
    tasks = []
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not pool.empty():
        _, writer = pool.get_nowait()
        writer.close()
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000, 3)

    return {
        "rate": rate,
        "requests": total,
        "achieved_rps": round(total / elapsed, 1),
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "max_ms": round(latencies[-1] * 1000, 3),
        "non200": sum(n for s, n in statuses.items() if s != 200),
        "statuses": statuses,
    }


if __name__ == "__main__":
    url, rate, seconds, body, auth = sys.argv[1:6]
    print(json.dumps(asyncio.run(run(url, int(rate), float(seconds), body, auth))))
