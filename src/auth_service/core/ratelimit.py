"""Rate limits on credential endpoints, with `limits`' asyncio strategies.

slowapi's decorator calls its storage synchronously, which would put a blocking Redis
round trip on the event loop for every request; `limits.aio` does the same job natively.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from fastapi import Depends, Request
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import ConnectionPool

from auth_service.audit.service import rate_limit_event, trip_throttle
from auth_service.core.actor import Actor, ActorKind
from auth_service.core.errors import RateLimited


def client_ip(request: Request) -> str:
    """The caller's IP: ProxyHeadersMiddleware (installed by create_app with TRUSTED_PROXIES)
    has already replaced a trusted proxy's address with the client it forwarded for."""
    return request.client.host if request.client else "unknown"


class RateLimiter:
    def __init__(
        self,
        redis_url: str | None,
        prefix: str,
        enabled: bool = True,
        *,
        pool: ConnectionPool | None = None,
    ) -> None:
        self.enabled = enabled
        self.storage: Storage
        self._pool: ConnectionPool | None = None
        if redis_url:
            uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
            # Our own pool, so shutdown can close its connections (limits never does).
            self._pool = pool or ConnectionPool.from_url(redis_url.removeprefix("async+"))
            self.storage = RedisStorage(
                uri,
                implementation="redispy",
                key_prefix=prefix + "rl",
                connection_pool=self._pool,  # type: ignore[arg-type]  # passed to Redis()
                # Storage faults as one type, answered 503 by core.errors.
                wrap_exceptions=True,
            )
        else:
            self.storage = MemoryStorage()
        self.strategy = MovingWindowRateLimiter(self.storage)
        self._items: dict[str, RateLimitItem] = {}

    def _item(self, limit: str) -> RateLimitItem:
        item = self._items.get(limit)
        if item is None:
            item = self._items[limit] = parse(limit)
        return item

    async def hit(self, limit: str, *identifiers: str) -> None:
        """Count one attempt; raise `RateLimited` with Retry-After once the window is full.

        `identifiers[0]` names the limit (e.g. "login"); the rest are keys (IP, hashed email).
        """
        if not self.enabled:
            return
        item = self._item(limit)
        if not await self.strategy.hit(item, *identifiers):
            stats = await self.strategy.get_window_stats(item, *identifiers)
            retry_after = max(1, int(stats.reset_time - time.time()) + 1)
            error = RateLimited(headers={"Retry-After": str(retry_after)})
            if trip_throttle.first("/".join(identifiers)):
                name = identifiers[0] if identifiers else "default"
                error.audit_event = rate_limit_event(Actor(ActorKind.USER), name)
            raise error

    async def reset(self) -> None:
        await self.storage.reset()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()


def hashed(value: str) -> str:
    """Identifiers such as emails go into keys hashed, never in the clear."""
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]


def rate_limit(name: str, setting: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency that limits by client IP under the limit named by `setting` in Settings."""

    async def dependency(request: Request) -> None:
        settings: Any = request.app.state.settings
        limiter: RateLimiter = request.app.state.rate_limiter
        await limiter.hit(getattr(settings, setting), name, client_ip(request))

    return dependency


class _Counter(Protocol):
    def hit(self, key: str) -> None: ...


async def default_rate_limit(request: Request) -> None:
    """RATE_LIMIT_DEFAULT per client IP, counted in this process (no Redis round trip).

    On every /auth/admin and /auth/users endpoint; the credential endpoints there also have
    their own, stricter, shared limits. Not on /auth/token* (RATE_LIMIT_TOKEN, per process),
    nor on probes, docs and metadata.
    """
    limiter: _Counter = request.app.state.default_rate_limiter
    limiter.hit(client_ip(request))


DefaultRateLimit = Depends(default_rate_limit)
