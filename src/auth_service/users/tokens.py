"""Local verification of Supabase user JWTs: no network call per request.

Asymmetric tokens (with a `kid`) are checked against the project's JWKS, fetched with httpx
(PyJWKClient is synchronous urllib and would block the loop) and cached; an unknown `kid`
triggers one refetch, at most every `min_refetch_seconds`. HS256 tokens are checked with
SUPABASE_JWT_SECRET when it is set. Logged-out sessions are refused through the denylist.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

import httpx
import jwt

from auth_service.core.security import Identity
from auth_service.revocation.service import (
    RevocationStore,
)

logger = logging.getLogger("auth_service.users.tokens")

ASYMMETRIC_ALGORITHMS = frozenset({"ES256", "RS256"})
AUDIENCE = "authenticated"


# Claims we read, with the JSON type they must have (issue 9: a wrong type is refused).
_CLAIM_TYPES: dict[str, type | tuple[type, ...]] = {
    "sub": str,
    "session_id": str,
    "aal": str,
    "email": str,
    "role": str,
    "is_anonymous": bool,
    "amr": list,
    "roles": list,
    "permissions": list,
}


def _well_typed(claims: Mapping[str, Any], max_lifetime: int) -> bool:
    for name, kind in _CLAIM_TYPES.items():
        if name in claims and not isinstance(claims[name], kind):
            return False
    exp, iat = claims["exp"], claims["iat"]
    if isinstance(exp, bool) or isinstance(iat, bool):
        return False
    if not isinstance(exp, int | float) or not isinstance(iat, int | float):
        return False
    # A token that lives longer than the configured cap was not minted under our policy.
    return exp - iat <= max_lifetime


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Header and claims without verification, for routing only; jwt.decode checks everything.

    Parsed here with the stdlib because PyJWT's own parse is slow (a per-character check), and
    the one in jwt.decode below is enough.
    """
    parts = token.split(".")
    if len(parts) != 3 or len(token) > 16_384:
        return None
    try:
        header, claims = (
            json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
            for part in parts[:2]
        )
    except (ValueError, TypeError):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return header, claims


class KeySource(Protocol):
    """Where the verifier finds the public key for a `kid` (a remote JWKS, or our key ring)."""

    async def get(self, kid: str) -> jwt.PyJWK | None: ...


class JwksCache:
    def __init__(
        self,
        http: httpx.AsyncClient,
        url: str,
        *,
        apikey: str,
        cache_seconds: float,
        min_refetch_seconds: float,
    ) -> None:
        self._http = http
        self._url = url
        self._headers = {"apikey": apikey}
        self._cache_seconds = cache_seconds
        self._min_refetch_seconds = min_refetch_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def get(self, kid: str) -> jwt.PyJWK | None:
        now = time.monotonic()
        fresh = self._fetched_at is not None and now - self._fetched_at < self._cache_seconds
        key = self._keys.get(kid)
        if key is not None and fresh:
            return key
        # Stale cache, or an unknown kid (a rotated key): refetch, but not on every bad token.
        if (
            self._fetched_at is None
            or not fresh
            or now - self._fetched_at >= self._min_refetch_seconds
        ):
            await self._refresh(self._fetched_at)
        return self._keys.get(kid)

    async def _refresh(self, seen_fetch: float | None) -> None:
        async with self._lock:
            if self._fetched_at != seen_fetch:
                return  # another request refreshed while we waited
            try:
                response = await self._http.get(self._url, headers=self._headers)
                response.raise_for_status()
                keys: dict[str, jwt.PyJWK] = {}
                for data in response.json().get("keys", []):
                    if data.get("kid") and data.get("alg") in ASYMMETRIC_ALGORITHMS:
                        keys[data["kid"]] = jwt.PyJWK(data)
            except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
                # Keep serving the keys we have; an outage must not log everyone out.
                logger.warning("jwks fetch failed", extra={"error_type": type(exc).__name__})
                self._fetched_at = time.monotonic()
                return
            self.fetches += 1
            self._keys = keys
            self._fetched_at = time.monotonic()


class SupabaseTokenVerifier:
    """Also the `TokenResolver` for user JWTs: returns None for anything it does not accept."""

    def __init__(
        self,
        *,
        issuer: str,
        jwks: KeySource | None,
        hs256_secret: str | None,
        revocations: RevocationStore,
        max_lifetime_seconds: int = 86_400,
    ) -> None:
        self.issuer = issuer
        self.jwks = jwks
        self.hs256_secret = hs256_secret
        self.revocations = revocations
        self.max_lifetime = max_lifetime_seconds

    async def verify(self, token: str) -> dict[str, Any] | None:
        peeked = _peek(token)
        # Cheap pre-check so foreign tokens (our machine tokens) never trigger a JWKS fetch.
        if peeked is None or peeked[1].get("iss") != self.issuer:
            return None
        header = peeked[0]
        alg = header.get("alg")
        key: Any
        if alg == "HS256":
            if not self.hs256_secret:
                return None
            key = self.hs256_secret
        elif alg in ASYMMETRIC_ALGORITHMS and self.jwks is not None:
            kid = header.get("kid")
            if not isinstance(kid, str):
                return None
            jwk = await self.jwks.get(kid)
            if jwk is None or jwk.algorithm_name != alg:
                return None
            key = jwk
        else:
            return None  # `none` and everything else we did not allow
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=AUDIENCE,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
            uuid.UUID(str(claims["sub"]))
        except (jwt.PyJWTError, ValueError):
            return None
        if not _well_typed(claims, self.max_lifetime):
            return None
        if await self._revoked(claims):
            return None
        return claims

    async def _revoked(self, claims: Mapping[str, Any]) -> bool:
        # One round trip on the hot path, whatever applies; fails closed (503).
        return await self.revocations.user_token_revoked(claims)

    async def resolve(self, token: str) -> Identity | None:
        claims = await self.verify(token)
        if claims is None:
            return None
        return Identity(kind="user", subject=uuid.UUID(str(claims["sub"])), claims=claims)
