"""`make bench`, local identity provider: password logins/s, refreshes/s, /health under logins.

- The app runs under uvicorn (one worker) pinned to CPU 0, with production argon2id parameters
  (m=19456 KiB, t=2, p=1); the load (httpx, asyncio) runs in this process pinned to CPU 1.
- Logins are argon2id-bound: the hash time (median of 20, measured here) is printed beside them.
- /health p99 is measured idle, then while 32 logins are in flight at all times: the ratio says
  whether password hashing blocks the event loop (it runs in a thread pool; it must not).

Rate limits and the per-account lockout are off for the run (one client IP, one account).
Knobs: BENCH_SECONDS (default 6 per phase).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from token_endpoint import ROOT, _free_port, database, server

SECONDS = float(os.environ.get("BENCH_SECONDS", "6"))
EMAIL, PASSWORD = "bench@example.com", "Bench-password-1"


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def hash_time() -> float:
    sys.path.insert(0, str(ROOT / "src"))
    from auth_service.identity.local.passwords import PasswordHasher

    hasher = PasswordHasher(memory_kib=19_456, time_cost=2, parallelism=1)
    times = []
    for _ in range(20):
        started = time.perf_counter()
        await hasher.hash(PASSWORD)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def logins(c: httpx.AsyncClient, concurrency: int, seconds: float) -> tuple[int, int]:
    done = failed = 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done, failed
        while time.monotonic() < deadline:
            r = await c.post("/auth/users/login", json={"email": EMAIL, "password": PASSWORD})
            done, failed = done + (r.status_code == 200), failed + (r.status_code != 200)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, failed


async def refreshes(c: httpx.AsyncClient, concurrency: int, seconds: float) -> tuple[int, int]:
    tokens = []
    for _ in range(concurrency):
        r = await c.post("/auth/users/login", json={"email": EMAIL, "password": PASSWORD})
        tokens.append(r.json()["refresh_token"])
    done = failed = 0
    deadline = time.monotonic() + seconds

    async def worker(token: str) -> None:
        nonlocal done, failed
        while time.monotonic() < deadline:
            r = await c.post("/auth/users/token/refresh", json={"refresh_token": token})
            if r.status_code == 200:
                done += 1
                token = r.json()["refresh_token"]
            else:
                failed += 1

    await asyncio.gather(*(worker(t) for t in tokens))
    return done, failed


async def health_latencies(c: httpx.AsyncClient, seconds: float) -> list[float]:
    out: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        r = await c.get("/health")
        if r.status_code != 200:
            raise RuntimeError(f"/health answered {r.status_code}")
        out.append(time.perf_counter() - started)
        await asyncio.sleep(0.01)
    return out


async def run(base: str) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as c:
        r = await c.post("/auth/users/register", json={"email": EMAIL, "password": PASSWORD})
        if r.status_code != 201:
            raise RuntimeError(f"register failed: {r.text}")
        await logins(c, 2, 1.0)  # warm up
        ok, bad = await logins(c, 4, SECONDS)
        login_rps = ok / SECONDS
        ok_r, bad_r = await refreshes(c, 8, SECONDS)
        idle = await health_latencies(c, 3.0)
        load = asyncio.create_task(logins(c, 32, SECONDS))
        await asyncio.sleep(0.5)
        busy = await health_latencies(c, SECONDS - 1.0)
        await load
    return {
        "login_rps": login_rps,
        "login_failed": bad,
        "refresh_rps": ok_r / SECONDS,
        "refresh_failed": bad_r,
        "health_idle_p99": p(idle, 0.99),
        "health_busy_p99": p(busy, 0.99),
        "health_busy_p50": p(busy, 0.50),
    }


def main() -> int:
    with database() as url:
        env = {
            **os.environ,
            "AUTH_SERVICE_DATABASE_URL": url,
            "ENVIRONMENT": "development",
            "LOGGING_LEVEL": "WARNING",
            "IDENTITY_PROVIDER": "local",
            "RATE_LIMIT_ENABLED": "false",
            "LOGIN_LOCKOUT_THRESHOLD": "1000000",
            "PASSWORD_HASH_MEMORY_KIB": "19456",
            "PASSWORD_HASH_TIME_COST": "2",
            "PASSWORD_HASH_PARALLELISM": "1",
            "PYTHONPATH": str(ROOT / "src"),
        }
        os.sched_setaffinity(0, {1})
        hash_ms = asyncio.run(hash_time())
        with server("auth_service.main:create_app", _free_port(), env, factory=True) as base:
            r = asyncio.run(run(base))
    ratio = r["health_busy_p99"] / max(r["health_idle_p99"], 1e-6)
    print(f"argon2id hash (m=19456,t=2,p=1), median of 20: {hash_ms:.1f} ms")
    print("| measure | value |\n|---|---:|")
    print(f"| password logins/s (one core, 4 in flight) | {r['login_rps']:.1f} |")
    print(f"| refreshes/s (8 sessions rotating) | {r['refresh_rps']:.0f} |")
    print(f"| /health p99 idle | {r['health_idle_p99']:.2f} ms |")
    print(f"| /health p50 / p99 during 32 concurrent logins | "
          f"{r['health_busy_p50']:.2f} / {r['health_busy_p99']:.2f} ms |")  # fmt: skip
    print(f"| p99 ratio busy/idle | {ratio:.1f} |")
    print(f"| failed logins / refreshes | {r['login_failed']} / {r['refresh_failed']} |")
    return 0 if r["login_failed"] == 0 and r["refresh_failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
