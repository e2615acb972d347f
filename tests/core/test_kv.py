"""The denylist store behaves the same on Redis and in memory."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from auth_service.core.kv import KeyValueStore, MemoryStore, RedisStore


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[KeyValueStore]:
    if request.param == "memory":
        kv: KeyValueStore = MemoryStore()
    else:
        url = request.getfixturevalue("require_redis")
        kv = RedisStore(Redis.from_url(url), f"test-kv-{uuid.uuid4().hex[:8]}:")
    yield kv
    await kv.close()


async def test_set_get_exists_delete(store: KeyValueStore) -> None:
    assert await store.get("a") is None
    assert not await store.exists("a")
    await store.set("a", "1", ttl_seconds=60)
    assert await store.get("a") == "1"
    assert await store.exists("a")
    await store.delete("a")
    assert not await store.exists("a")


async def test_get_many_keeps_order_and_gaps(store: KeyValueStore) -> None:
    await store.set("x", "10", ttl_seconds=60)
    await store.set("z", "30", ttl_seconds=60)
    assert await store.get_many("x", "y", "z") == ["10", None, "30"]


async def test_entries_expire(store: KeyValueStore) -> None:
    await store.set("short", "v", ttl_seconds=1)
    assert await store.exists("short")
    await asyncio.sleep(1.2)
    assert not await store.exists("short")
    assert await store.ping()
