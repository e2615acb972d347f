"""RFC 9068 access tokens: minting and local verification against the key ring."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jwt

from auth_service.oauth2.keys import KeyManager

TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a secret
_ACCEPTED_TYP = frozenset({"at+jwt", "application/at+jwt"})
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "sub", "aud", "jti", "client_id"]


class TokenCodec:
    def __init__(self, keys: KeyManager, *, issuer: str, ttl_seconds: int) -> None:
        self.keys = keys
        self.issuer = issuer
        self.ttl = ttl_seconds

    def mint(
        self,
        *,
        client_id: str,
        audience: str,
        roles: Sequence[str],
        permissions: Sequence[str],
        subject: str | None = None,
        extra: Mapping[str, Any] | None = None,
        ttl: int | None = None,
    ) -> tuple[str, int]:
        """A signed token and its lifetime in seconds.

        `subject` other than the client: token exchange (then `extra` carries `act`);
        `extra` may also carry `cnf` (DPoP binding).
        """
        ring = self.keys.ring  # read once: a refresh may swap it meanwhile
        now = int(time.time())
        lifetime = self.ttl if ttl is None else ttl
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject or client_id,
            "client_id": client_id,
            "aud": audience,
            "iat": now,
            "exp": now + lifetime,
            "jti": os.urandom(16).hex(),
            "roles": list(roles),
            "permissions": list(permissions),
            "scope": " ".join(permissions),
        }
        if extra:
            claims.update(extra)
        return ring.sign(claims), lifetime

    def verify(self, token: str, *, audience: str | None) -> dict[str, Any] | None:
        """Claims of a valid token of ours, else None. `audience=None` accepts any audience."""
        try:
            header = jwt.get_unverified_header(token)
            if str(header.get("typ", "")).lower() not in _ACCEPTED_TYP:
                return None
            key = self.keys.ring.verification.get(str(header.get("kid")))
            if key is None:
                return None
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],  # the key's own algorithm, never the header's choice
                issuer=self.issuer,
                audience=audience,
                options={"require": _REQUIRED_CLAIMS, "verify_aud": audience is not None},
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            return None
        # A token is the client's own, or an exchanged one naming the client as actor.
        if claims.get("sub") != claims.get("client_id") and not _acts_for(claims):
            return None
        return claims


def _acts_for(claims: Mapping[str, Any]) -> bool:
    act = claims.get("act")
    return isinstance(act, dict) and act.get("sub") == claims.get("client_id")
