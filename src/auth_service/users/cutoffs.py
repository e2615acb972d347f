"""Revocation cutoffs: every token of a user (or a session) issued up to now stops working.

The one place that writes them for account events (deletion, ban, refresh-token reuse), so
they can move to a durable revocation store without touching the callers.
"""

from __future__ import annotations

import time
import uuid

from auth_service.core.kv import KeyValueStore
from auth_service.core.ratelimit import hashed
from auth_service.users.tokens import revoked_session_key, revoked_user_key

# Supabase caps JWT expiry at one week: a token issued before the cutoff cannot outlive this.
MAX_USER_TOKEN_LIFETIME_SECONDS = 7 * 24 * 3600


async def cut_off_user(
    kv: KeyValueStore, user_id: uuid.UUID | str, *, lifetime: int = MAX_USER_TOKEN_LIFETIME_SECONDS
) -> None:
    """Refuse every access token of the user issued up to now."""
    await kv.set(revoked_user_key(str(user_id)), str(int(time.time())), max(1, lifetime))


async def cut_off_session(
    kv: KeyValueStore, session_id: str, *, lifetime: int = MAX_USER_TOKEN_LIFETIME_SECONDS
) -> None:
    """Refuse every access token of one session."""
    await kv.set(revoked_session_key(session_id), "1", max(1, lifetime))


def _refresh_key(refresh_token: str) -> str:
    return f"refresh:session:{hashed(refresh_token)}"


async def remember_refresh_session(
    kv: KeyValueStore,
    refresh_token: str,
    session_id: str,
    *,
    lifetime: int = MAX_USER_TOKEN_LIFETIME_SECONDS,
) -> None:
    """Which session a refresh token we handed out belongs to (its hash only), so a reuse
    reported upstream can cut that session off here too."""
    await kv.set(_refresh_key(refresh_token), session_id, lifetime)


async def cut_off_refresh_session(kv: KeyValueStore, refresh_token: str) -> str | None:
    """Cut off the session of a reused refresh token; its session id, if we knew it."""
    values = await kv.get_many(_refresh_key(refresh_token))
    session_id = values[0] if values else None
    if session_id:
        await cut_off_session(kv, str(session_id))
        return str(session_id)
    return None
