"""Does a user have a verified MFA factor? Asked before a human reaches an admin endpoint.

Supabase access tokens carry `aal` and `amr` but no factor list, so the identity provider's
admin API is asked, with a short in-process cache: one upstream call per admin user per
`ttl` seconds at most, none for sessions already at aal2.
"""

from __future__ import annotations

import time
import uuid
from typing import Protocol, runtime_checkable

from auth_service.identity.port import IdentityUser


class UserLookup(Protocol):
    async def admin_get_user(self, user_id: uuid.UUID) -> IdentityUser | None: ...


@runtime_checkable
class FactorSource(Protocol):
    """A provider that knows its users' factors itself (the local provider's own table)."""

    async def has_verified_factor(self, user_id: uuid.UUID) -> bool: ...


class FactorCheck:
    def __init__(self, provider: UserLookup | None, ttl_seconds: float = 30.0) -> None:
        self.provider = provider
        self.ttl = ttl_seconds
        self._cache: dict[uuid.UUID, tuple[float, bool]] = {}

    async def has_verified_factor(self, user_id: uuid.UUID) -> bool:
        if self.provider is None:
            return False
        now = time.monotonic()
        cached = self._cache.get(user_id)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        if isinstance(self.provider, FactorSource):
            verified = await self.provider.has_verified_factor(user_id)
        else:
            user = await self.provider.admin_get_user(user_id)
            verified = bool(user and user.has_verified_factor)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[user_id] = (now, verified)
        return verified

    def forget(self, user_id: uuid.UUID) -> None:
        """After an enroll, verify or unenroll through us: ask again next time."""
        self._cache.pop(user_id, None)
