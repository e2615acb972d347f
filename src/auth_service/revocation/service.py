"""The one revocation store every denylist write and check goes through.

PostgreSQL (`revocations`) is the source of truth: a write is durable in the database before it
is cached, and an entry keeps its expiry there (pruned after it). Redis (or the in-process
store) is a cache read on every check in one round trip, together with a sentinel key that
says the cache is complete. A Redis restart, flush or failover loses the sentinel with
everything else; a check that finds it missing answers from the database and triggers one
rebuild of the cache from the table, so a revoked token stays revoked across any Redis event.

API for other domains (reachable as `app.state.revocations`, dependency `Revocations`):

    await revocations.revoke_token(jti, ttl=seconds)               # a machine token
    await revocations.revoke_session(session_id, ttl=seconds)      # one user session
    await revocations.revoke_user(user_id, cutoff=now, ttl=secs)   # every token issued <= cutoff
    await revocations.token_revoked(jti) / user_token_revoked(claims)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_service.core.errors import ServiceUnavailable, dependency_failure
from auth_service.core.kv import KeyValueStore
from auth_service.revocation.repository import RevocationRepository

logger = logging.getLogger("auth_service.revocation")

# Present only while the cache holds every live revocation; its value names the rebuild.
SENTINEL_KEY = "revoked:cache-complete"
_SENTINEL_TTL = 30 * 86_400
_PRUNE_EVERY_SECONDS = 600.0


def token_key(jti: str) -> str:
    return f"revoked:jti:{jti}"


def session_key(session_id: str) -> str:
    return f"revoked:session:{session_id}"


def user_key(user_id: uuid.UUID | str) -> str:
    return f"revoked:user:{user_id}"


def kept_session_key(session_id: str) -> str:
    """A session spared by the user's cutoff (value: that cutoff), e.g. the one that changed
    the password while every other session was signed out."""
    return f"revoked:kept:{session_id}"


def _unavailable(exc: BaseException) -> ServiceUnavailable:
    failure = dependency_failure(exc)
    return failure if failure is not None else ServiceUnavailable()


class RevocationStore:
    def __init__(self, engine: AsyncEngine, cache: KeyValueStore) -> None:
        self.repo = RevocationRepository(engine)
        self.cache = cache
        self._rebuild: asyncio.Task[None] | None = None
        self._pruner: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        with contextlib.suppress(Exception):  # a cold cache is correct, only slower
            await self.rebuild()
        self._pruner = asyncio.create_task(self._prune_forever(), name="revocation-pruner")

    async def stop(self) -> None:
        for task in (self._pruner, self._rebuild):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # --- writes ----------------------------------------------------------------------------

    async def revoke_token(self, jti: str, *, ttl: int) -> None:
        await self._put(token_key(jti), "1", ttl)

    async def revoke_session(self, session_id: str, *, ttl: int) -> None:
        await self._put(session_key(session_id), "1", ttl)

    async def revoke_user(
        self,
        user_id: uuid.UUID | str,
        *,
        cutoff: float | None = None,
        ttl: int,
        keep_session: str | None = None,
    ) -> None:
        """Refuse every token of the user issued at or before `cutoff` (default now).

        `keep_session` spares one session (the one that changed the password). `ttl` must
        cover the longest-lived token issued before the cutoff.
        """
        mark = str(int(cutoff if cutoff is not None else time.time()))
        if keep_session:
            await self._put(kept_session_key(keep_session), mark, ttl)
        await self._put(user_key(user_id), mark, ttl)

    async def _put(self, key: str, value: str, ttl: int) -> None:
        # Database first: once this returns, no cache event can undo the revocation.
        try:
            await self.repo.put(key, value, ttl)
        except Exception as exc:
            raise _unavailable(exc) from exc
        try:
            await self.cache.set(key, value, ttl)
        except Exception as exc:
            # Durable already; but a warm cache without the entry would let the token pass, so
            # the caller hears 503 and retries (the write is idempotent).
            logger.warning("revocation cache write failed", extra={"error": type(exc).__name__})
            raise _unavailable(exc) from exc

    # --- checks ----------------------------------------------------------------------------

    async def lookup(self, *keys: str) -> list[str | None]:
        """The entries for `keys` (None where not revoked): one cache round trip when warm."""
        try:
            sentinel, *values = await self.cache.get_many(SENTINEL_KEY, *keys)
        except Exception as exc:
            # Fail closed: without the denylist a revoked token would pass.
            logger.warning("revocation cache unavailable", extra={"error": type(exc).__name__})
            raise _unavailable(exc) from exc
        if sentinel is not None:
            return values
        # Cold (Redis restarted or flushed): the database answers until the cache is rebuilt.
        self._schedule_rebuild()
        try:
            found = await self.repo.get_many(keys)
        except Exception as exc:
            raise _unavailable(exc) from exc
        return [found.get(key) for key in keys]

    async def token_revoked(self, jti: str) -> bool:
        (entry,) = await self.lookup(token_key(jti))
        return entry is not None

    async def user_token_revoked(self, claims: Mapping[str, Any]) -> bool:
        """A user JWT (`sub`, `iat`, optional `session_id`) is denied by logout or a cutoff."""
        session_id = claims.get("session_id")
        keys = [user_key(str(claims["sub"]))]
        if session_id:
            keys += [session_key(str(session_id)), kept_session_key(str(session_id))]
        cutoff, *session_entries = await self.lookup(*keys)
        session_revoked, kept = session_entries if session_entries else (None, None)
        if session_revoked is not None:
            return True
        if cutoff is None or int(claims["iat"]) > int(float(cutoff)):
            return False
        return kept != cutoff

    # --- cache rebuild and pruning --------------------------------------------------------

    def _schedule_rebuild(self) -> None:
        if self._rebuild is None or self._rebuild.done():
            self._rebuild = asyncio.create_task(self._rebuild_quietly(), name="revocation-rebuild")

    async def _rebuild_quietly(self) -> None:
        try:
            await self.rebuild()
        except Exception as exc:  # the next cold check tries again
            logger.warning("revocation cache rebuild failed", extra={"error": type(exc).__name__})

    async def rebuild(self) -> int:
        """Copy every live revocation into the cache, then mark it complete, atomically."""
        entries = await self.repo.live()
        marker = (SENTINEL_KEY, uuid.uuid4().hex, _SENTINEL_TTL)
        # One MULTI/EXEC: a flush can come before or after, never between entries and marker.
        await self.cache.set_many([*entries, marker])
        logger.info("revocation cache rebuilt", extra={"entries": len(entries)})
        return len(entries)

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(_PRUNE_EVERY_SECONDS)
            try:
                await self.repo.prune()
            except Exception as exc:
                logger.warning("revocation prune failed", extra={"error": type(exc).__name__})


def get_revocations(request: Request) -> RevocationStore:
    store: RevocationStore = request.app.state.revocations
    return store


Revocations = Annotated[RevocationStore, Depends(get_revocations)]
