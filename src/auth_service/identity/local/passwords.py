"""Password hashing (argon2id, bcrypt verified for imports) and the password policy."""

from __future__ import annotations

import asyncio
import hashlib
import os
import string
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

from auth_service.config import Settings

T = TypeVar("T")


def _usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


_CLASSES = {
    "lower": set(string.ascii_lowercase),
    "upper": set(string.ascii_uppercase),
    "digit": set(string.digits),
}


class PasswordHasher:
    """argon2id for new hashes; bcrypt ($2a$/$2b$, as GoTrue stores them) verified and rehashed.

    Every call runs in a worker thread: one argon2id hash is ~tens of ms of CPU, which on the
    event loop would stall every other request. At most one hash per usable core runs at a
    time; the rest wait without using CPU, so the event loop keeps its share of the core.
    """

    def __init__(self, *, memory_kib: int, time_cost: int, parallelism: int) -> None:
        self._hash = PasswordHash(
            (
                Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism),
                BcryptHasher(),
            )
        )
        self._dummy: str | None = None
        self._slots = asyncio.Semaphore(_usable_cores())

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordHasher:
        return cls(
            memory_kib=settings.password_hash_memory_kib,
            time_cost=settings.password_hash_time_cost,
            parallelism=settings.password_hash_parallelism,
        )

    async def _in_thread(self, fn: Callable[..., T], *args: str) -> T:
        async with self._slots:
            return await asyncio.to_thread(fn, *args)

    async def hash(self, password: str) -> str:
        return await self._in_thread(self._hash.hash, password)

    async def verify(self, password: str, stored: str | None) -> tuple[bool, str | None]:
        """(valid, new hash to store or None). A missing hash is checked against a dummy one,
        so an unknown account costs exactly as much time as a wrong password."""
        if stored is None:
            if self._dummy is None:
                self._dummy = await self.hash("dummy password for unknown accounts")
            await self._in_thread(self._hash.verify, password, self._dummy)
            return False, None
        try:
            return await self._in_thread(self._hash.verify_and_update, password, stored)
        except Exception:  # an unparseable stored hash never matches
            return False, None


class PasswordPolicy:
    """Answers GoTrue's `weak_password` reasons: `length`, `characters`, `pwned`."""

    def __init__(
        self, *, min_length: int, required: list[str], breached: frozenset[str] = frozenset()
    ) -> None:
        self.min_length = min_length
        self.required = required
        self.breached = breached

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordPolicy:
        breached: frozenset[str] = frozenset()
        if settings.password_breached_list_path:
            lines = Path(settings.password_breached_list_path).read_text("utf-8").splitlines()
            breached = frozenset(_digest(line.strip()) for line in lines if line.strip())
        return cls(
            min_length=settings.password_min_length,
            required=list(settings.password_required_characters),
            breached=breached,
        )

    def reasons(self, password: str) -> list[str]:
        reasons: list[str] = []
        if len(password) < self.min_length:
            reasons.append("length")
        chars = set(password)
        for name in self.required:
            wanted = _CLASSES.get(name)
            ok = bool(chars & wanted) if wanted else any(not c.isalnum() for c in password)
            if not ok:
                reasons.append("characters")
                break
        if self.breached and _digest(password) in self.breached:
            reasons.append("pwned")
        return reasons


def _digest(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()
