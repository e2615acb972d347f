"""Small key-value store for denylists: Redis when configured, in-process otherwise."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

if TYPE_CHECKING:
    from auth_service.config import Settings


def redis_pool(settings: Settings, url: str | None = None) -> BlockingConnectionPool:
    """A bounded pool: past REDIS_POOL_SIZE a request waits up to the pool timeout, then 503.

    redis-py's default pool fails at once when it runs out, which under load turned healthy
    Redis into spurious errors.
    """
    target = url or settings.redis_url
    if not target:
        raise ValueError("REDIS_URL is not set")
    return BlockingConnectionPool.from_url(
        target,
        max_connections=settings.redis_pool_size,
        timeout=settings.redis_pool_timeout_seconds,
        socket_timeout=settings.redis_socket_timeout_seconds,
        socket_connect_timeout=settings.redis_socket_timeout_seconds,
        health_check_interval=30,
        # One immediate retry covers a connection that went stale across a Redis restart;
        # redis-py's default (three, with backoff of seconds) would hold requests far past
        # the socket timeout while Redis is down.
        retry=Retry(NoBackoff(), 1),
    )


class KeyValueStore(Protocol):
    async def set(self, key: str, value: str, ttl_seconds: int) -> None: ...
    async def add(self, key: str, value: str, ttl_seconds: int) -> bool: ...
    async def exists(self, key: str) -> bool: ...
    async def get(self, key: str) -> str | None: ...
    async def get_many(self, *keys: str) -> list[str | None]: ...
    async def set_many(self, items: Sequence[tuple[str, str, int]]) -> None: ...
    async def delete(self, key: str) -> None: ...
    async def ping(self) -> bool: ...
    async def close(self) -> None: ...


class RedisStore:
    def __init__(self, client: Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    async def set(self, key: str, value: str, ttl_seconds: int) -> None:
        await self.client.set(self.prefix + key, value, ex=max(1, ttl_seconds))

    async def add(self, key: str, value: str, ttl_seconds: int) -> bool:
        """Set only if absent (SET NX): True when this call created the key (replay caches)."""
        return bool(
            await self.client.set(self.prefix + key, value, ex=max(1, ttl_seconds), nx=True)
        )

    async def exists(self, key: str) -> bool:
        return bool(await self.client.exists(self.prefix + key))

    async def get(self, key: str) -> str | None:
        value = await self.client.get(self.prefix + key)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def get_many(self, *keys: str) -> list[str | None]:
        # One round trip for several denylist entries (MGET).
        values = await self.client.mget([self.prefix + key for key in keys])
        return [v.decode() if isinstance(v, bytes) else v for v in values]

    async def set_many(self, items: Sequence[tuple[str, str, int]]) -> None:
        """(key, value, ttl) triples in one MULTI/EXEC: all of them land, or none."""
        async with self.client.pipeline(transaction=True) as pipe:
            for key, value, ttl in items:
                pipe.set(self.prefix + key, value, ex=max(1, ttl))
            await pipe.execute()

    async def delete(self, key: str) -> None:
        await self.client.delete(self.prefix + key)

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def close(self) -> None:
        await self.client.aclose()


class MemoryStore:
    """Single-process fallback; entries expire lazily. Not shared between replicas."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[str, float]] = {}

    def _live(self, key: str) -> tuple[str, float] | None:
        item = self._data.get(key)
        if item is not None and item[1] <= time.monotonic():
            del self._data[key]
            return None
        return item

    async def set(self, key: str, value: str, ttl_seconds: int) -> None:
        if len(self._data) > 100_000:
            now = time.monotonic()
            self._data = {k: v for k, v in self._data.items() if v[1] > now}
        self._data[key] = (value, time.monotonic() + max(1, ttl_seconds))

    async def add(self, key: str, value: str, ttl_seconds: int) -> bool:
        if self._live(key) is not None:
            return False
        await self.set(key, value, ttl_seconds)
        return True

    async def exists(self, key: str) -> bool:
        return self._live(key) is not None

    async def get(self, key: str) -> str | None:
        item = self._live(key)
        return item[0] if item else None

    async def get_many(self, *keys: str) -> list[str | None]:
        return [await self.get(key) for key in keys]

    async def set_many(self, items: Sequence[tuple[str, str, int]]) -> None:
        for key, value, ttl in items:
            await self.set(key, value, ttl)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()
