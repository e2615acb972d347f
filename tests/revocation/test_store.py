"""The revocation store on its own: durable first, cold cache answered from the database and
rebuilt, expired entries pruned, and the user-cutoff rules."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_service.core.kv import MemoryStore
from auth_service.revocation.models import Revocation
from auth_service.revocation.service import SENTINEL_KEY, RevocationStore, token_key


async def test_a_fresh_cache_answers_from_the_database_then_is_rebuilt(
    engine: AsyncEngine, clean_db: None
) -> None:
    await RevocationStore(engine, MemoryStore()).revoke_token("j1", ttl=60)

    # A new, empty cache (a Redis restart, or a new process on the in-memory store).
    cache = MemoryStore()
    store = RevocationStore(engine, cache)
    assert await store.token_revoked("j1") is True
    assert await store.token_revoked("j2") is False
    assert store._rebuild is not None
    await store._rebuild
    assert await cache.get(SENTINEL_KEY) is not None
    assert await cache.get(token_key("j1")) == "1"
    assert await store.token_revoked("j1") is True


async def test_user_cutoff_spares_the_kept_session_and_later_tokens(
    engine: AsyncEngine, clean_db: None
) -> None:
    store = RevocationStore(engine, MemoryStore())
    await store.start()
    user = uuid.uuid4()
    now = int(time.time())
    await store.revoke_user(user, cutoff=now, ttl=60, keep_session="kept")
    claims = {"sub": str(user), "iat": now}
    assert await store.user_token_revoked({**claims, "session_id": "other"}) is True
    assert await store.user_token_revoked({**claims, "session_id": "kept"}) is False
    assert await store.user_token_revoked({**claims, "iat": now + 1}) is False
    await store.revoke_session("kept", ttl=60)
    assert await store.user_token_revoked({**claims, "session_id": "kept"}) is True
    await store.stop()


async def test_expired_entries_are_not_live_and_are_pruned(
    engine: AsyncEngine, clean_db: None
) -> None:
    store = RevocationStore(engine, MemoryStore())
    await store.revoke_token("alive", ttl=60)
    async with engine.begin() as conn:
        await conn.execute(
            insert(Revocation).values(
                key=token_key("dead"), value="1", expires_at=datetime.now(UTC) - timedelta(1)
            )
        )
    assert [key for key, _, _ in await store.repo.live()] == [token_key("alive")]
    cold = RevocationStore(engine, MemoryStore())
    assert await cold.token_revoked("dead") is False
    assert await store.repo.prune() == 1
    async with engine.connect() as conn:
        keys = (await conn.execute(select(Revocation.key))).scalars().all()
    assert keys == [token_key("alive")]
    if cold._rebuild is not None:
        await cold._rebuild
