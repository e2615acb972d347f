"""Revocation cutoffs: every token of a user (or a session) issued up to now stops working.

The one place that writes them for account events (deletion, refresh-token reuse). They go
to the durable revocation store (PostgreSQL, cached in Redis), so they survive a Redis loss.
"""

from __future__ import annotations

import uuid

from auth_service.core.ratelimit import hashed
from auth_service.revocation.service import RevocationStore

# Supabase caps JWT expiry at one week: a token issued before the cutoff cannot outlive this.
MAX_USER_TOKEN_LIFETIME_SECONDS = 7 * 24 * 3600


async def cut_off_user(
    revocations: RevocationStore,
    user_id: uuid.UUID | str,
    *,
    lifetime: int = MAX_USER_TOKEN_LIFETIME_SECONDS,
) -> None:
    """Refuse every access token of the user issued up to now."""
    await revocations.revoke_user(user_id, ttl=max(1, lifetime))


async def cut_off_session(
    revocations: RevocationStore,
    session_id: str,
    *,
    lifetime: int = MAX_USER_TOKEN_LIFETIME_SECONDS,
) -> None:
    """Refuse every access token of one session."""
    await revocations.revoke_session(session_id, ttl=max(1, lifetime))


def _refresh_key(refresh_token: str) -> str:
    return f"refresh:session:{hashed(refresh_token)}"


async def remember_refresh_session(
    revocations: RevocationStore,
    refresh_token: str,
    session_id: str,
    *,
    lifetime: int = MAX_USER_TOKEN_LIFETIME_SECONDS,
) -> None:
    """Which session a refresh token we handed out belongs to (its hash only), so a reuse
    reported upstream can cut that session off here too. A hint kept in the cache only:
    losing it loses the cutoff on reuse, never a revocation already made."""
    await revocations.cache.set(_refresh_key(refresh_token), session_id, lifetime)


async def cut_off_refresh_session(revocations: RevocationStore, refresh_token: str) -> str | None:
    """Cut off the session of a reused refresh token; its session id, if we knew it."""
    values = await revocations.cache.get_many(_refresh_key(refresh_token))
    session_id = values[0] if values else None
    if session_id:
        await cut_off_session(revocations, str(session_id))
        return str(session_id)
    return None
