"""In-process cache of client credentials for the token endpoint, invalidated on every change.

A database round trip costs more CPU than everything else on the token path together, so
credentials are cached per process. The cache is only correct because it is cleared whenever
anything it depends on changes (clients, their roles, roles' permissions):

- Writes made by this process: an engine-level SQLAlchemy hook sees any non-SELECT statement
  and clears the cache when that transaction commits (before the response is sent). The
  asyncpg hot path never writes, so the hook costs it nothing.
- Writes made anywhere else (other replicas, the CLI, psql): statement-level triggers
  (migration 20261126_0002) `pg_notify` the channel below; every process LISTENs on a
  dedicated connection and clears its cache on each notification.
- If that connection is down, the cache is bypassed (every request reads the database)
  until it is back. Entries also expire after CLIENT_CACHE_TTL_SECONDS as a last resort.

A generation counter closes the race in which a request reads the old row, the cache is
cleared, and the request then stores the old row: a load stores only if no invalidation
happened since it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs published
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from auth_service.clients.repository import ClientCredentials, ClientCredentialsReader

logger = logging.getLogger("auth_service.oauth2.client_cache")

CHANNEL = "auth_service_clients"
_MAX_ENTRIES = 10_000
_live_caches: weakref.WeakSet[ClientCache] = weakref.WeakSet()


def invalidate_all() -> None:
    """Clear every cache in this process (called on local commits and on notifications)."""
    for cache in list(_live_caches):
        cache.invalidate()


def _before_cursor_execute(
    conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
) -> None:
    if not statement.lstrip()[:6].upper().startswith("SELECT"):
        conn.info["auth_service_wrote"] = True


def _on_commit(conn: Connection) -> None:
    if conn.info.pop("auth_service_wrote", False):
        invalidate_all()


def install_write_hooks() -> None:
    """Idempotent: listen on every Engine in the process (ORM and Core writes alike)."""
    if not event.contains(Engine, "before_cursor_execute", _before_cursor_execute):
        event.listen(Engine, "before_cursor_execute", _before_cursor_execute)
        event.listen(Engine, "commit", _on_commit)


class ClientCache:
    def __init__(self, reader: ClientCredentialsReader, ttl_seconds: float) -> None:
        self.reader = reader
        self.ttl = ttl_seconds
        self.generation = 0
        self.listening = False  # bypassed until the LISTEN connection is up
        self._entries: dict[uuid.UUID, tuple[ClientCredentials | None, float]] = {}
        _live_caches.add(self)

    def invalidate(self) -> None:
        self.generation += 1
        self._entries.clear()

    async def credentials(self, client_id: uuid.UUID) -> ClientCredentials | None:
        if self.listening and self.ttl > 0:
            entry = self._entries.get(client_id)
            if entry is not None and entry[1] > time.monotonic():
                return entry[0]
        generation = self.generation
        found = await self.reader.credentials(client_id)
        if self.listening and self.ttl > 0 and generation == self.generation:
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.clear()
            # Unknown ids are cached too (as None), so a flood of random ids stays cheap.
            self._entries[client_id] = (found, time.monotonic() + self.ttl)
        return found


class ChangeListener:
    """LISTENs for change notifications on its own connection, reconnecting when it drops."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        cache: ClientCache,
        retry_seconds: float = 2.0,
    ) -> None:
        self.connect = connect
        self.cache = cache
        self.retry_seconds = retry_seconds
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._barriers: dict[str, asyncio.Future[None]] = {}

    async def start(self) -> None:
        await self._open()
        self._task = asyncio.create_task(self._supervise(), name="client-cache-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.cache.listening = False
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()

    def _notified(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        barrier = self._barriers.pop(payload, None)
        if barrier is not None:
            if not barrier.done():
                barrier.set_result(None)
            return
        self.cache.invalidate()

    async def barrier(self) -> None:
        """Return once every change notified before this call has been applied.

        Notifications arrive in commit order, so our own marker coming back means all the
        earlier ones were handled (used by tests; harmless anywhere).
        """
        if self._conn is None or self._conn.is_closed():
            raise RuntimeError("the change listener is not connected")
        marker = f"barrier:{uuid.uuid4().hex}"
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._barriers[marker] = waiter
        try:
            await self._conn.execute("SELECT pg_notify($1, $2)", CHANNEL, marker)
            async with asyncio.timeout(5):
                await waiter
        finally:
            self._barriers.pop(marker, None)

    def _terminated(self, *args: Any) -> None:
        # From now on we would miss changes: stop trusting (and clear) the cache.
        self.cache.listening = False
        self.cache.invalidate()
        self._lost.set()

    async def _open(self) -> None:
        try:
            conn = await self.connect()
            await conn.add_listener(CHANNEL, self._notified)
            conn.add_termination_listener(self._terminated)
        except (OSError, asyncpg.PostgresError) as exc:
            logger.warning("client cache disabled: cannot listen", extra={"error": str(exc)})
            self._lost.set()
            return
        self._conn = conn
        self.cache.invalidate()  # anything cached before we listened may be stale
        self.cache.listening = True

    async def _supervise(self) -> None:
        while True:
            await self._lost.wait()
            self._lost.clear()
            await asyncio.sleep(self.retry_seconds)
            await self._open()
