"""Local verification cost of a Supabase user JWT (the hot path of every user request).

Runs the GoTrue stand-in on loopback for the JWKS, then verifies one ES256 token N times in
process: signature check with the cached JWK, claim checks, and the two denylist lookups in
Redis (REDIS_URL) or in memory. Prints verifications per second and the mean latency.

    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python -m bench.user_token_verify
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import httpx
from redis.asyncio import Redis
from tests.support.gotrue import ANON_KEY, GoTrueStandIn, ServedStandIn

from auth_service.core.db import create_engine
from auth_service.core.kv import KeyValueStore, MemoryStore, RedisStore
from auth_service.revocation.service import SENTINEL_KEY, RevocationStore
from auth_service.users.tokens import JwksCache, SupabaseTokenVerifier

N = int(os.environ.get("BENCH_N", "5000"))


async def main(standin: GoTrueStandIn) -> None:
    redis_url = os.environ.get("REDIS_URL")
    kv: KeyValueStore = (
        RedisStore(Redis.from_url(redis_url), "bench:") if redis_url else MemoryStore()
    )
    async with httpx.AsyncClient() as http:
        jwks = JwksCache(
            http,
            standin.issuer + "/.well-known/jwks.json",
            apikey=ANON_KEY,
            cache_seconds=600,
            min_refetch_seconds=30,
        )
        # A warm revocation cache (the sentinel set): every check is one cache round trip.
        # The engine is never connected: a warm cache does not need the database.
        revocations = RevocationStore(create_engine("postgresql://bench@127.0.0.1/bench"), kv)
        await kv.set(SENTINEL_KEY, "bench", 600)
        verifier = SupabaseTokenVerifier(
            issuer=standin.issuer, jwks=jwks, hs256_secret=None, revocations=revocations
        )
        token = standin.mint_token(standin.create_user("bench@example.com", "x"))
        if await verifier.verify(token) is None:
            raise SystemExit("the stand-in's token was not accepted")
        samples = []
        started = time.perf_counter()
        for _ in range(N):
            t = time.perf_counter()
            await verifier.verify(token)
            samples.append(time.perf_counter() - t)
        total = time.perf_counter() - started
    await kv.close()
    store = "redis" if redis_url else "memory"
    print(
        f"{N} verifications ({store} denylist): {N / total:,.0f}/s, "
        f"mean {statistics.mean(samples) * 1e6:.0f} us, "
        f"p99 {sorted(samples)[int(N * 0.99)] * 1e6:.0f} us, jwks fetches {jwks.fetches}"
    )


if __name__ == "__main__":
    with ServedStandIn(GoTrueStandIn()) as served:
        asyncio.run(main(served))
