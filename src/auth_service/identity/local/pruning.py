"""Deletes the local provider's rows that expired (OAuth flows in flight, one-time email
tokens, MFA challenges, used-code markers), a bounded batch at a time, like the revocation
store's pruner: reads already refuse them, this only keeps the tables small."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_service.identity.local.repository import LocalIdentityRepository

logger = logging.getLogger("auth_service.identity.local.pruning")

PRUNE_BATCH = 1000  # rows per table per transaction: short locks, short statements
PRUNE_MAX_BATCHES = 10  # per run; a larger backlog waits for the next run


class LocalPruner:
    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], interval_seconds: float
    ) -> None:
        self.session_factory = session_factory
        self.interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._prune_forever(), name="local-identity-pruner")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def prune(self, batch: int = PRUNE_BATCH, max_batches: int = PRUNE_MAX_BATCHES) -> int:
        """One run: batches until nothing expired is left or `max_batches` are done."""
        total = 0
        for _ in range(max_batches):
            async with self.session_factory.begin() as session:
                deleted = await LocalIdentityRepository(session).prune_expired(batch)
            total += sum(deleted.values())
            if max(deleted.values()) < batch:
                break
        if total:
            logger.info("expired local identity rows pruned", extra={"rows": total})
        return total

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.prune()
            except Exception as exc:
                logger.warning("local identity prune failed", extra={"error": type(exc).__name__})
