"""Bearer tokens we issued, resolved to a client identity for admin endpoints."""

from __future__ import annotations

import logging
import uuid

from auth_service.core.errors import ServiceUnavailable
from auth_service.core.kv import KeyValueStore
from auth_service.core.security import Identity
from auth_service.oauth2.service import revoked_key
from auth_service.oauth2.tokens import TokenCodec

logger = logging.getLogger("auth_service.oauth2.resolver")


class M2MTokenResolver:
    """Verifies locally (key ring in memory), then consults the revocation denylist.

    Only tokens for our own audience (DEFAULT_AUDIENCE) are accepted here: a token minted
    for another resource server must not open the admin API.
    """

    def __init__(self, codec: TokenCodec, kv: KeyValueStore, audience: str) -> None:
        self.codec = codec
        self.kv = kv
        self.audience = audience

    async def resolve(self, token: str) -> Identity | None:
        claims = self.codec.verify(token, audience=self.audience)
        # Only a client's own bearer token opens the admin API: not a token exchanged on a
        # user's behalf (act), nor a DPoP-bound one (cnf) presented as a bearer token.
        if claims is None or "act" in claims or "cnf" in claims:
            return None
        try:
            subject = uuid.UUID(str(claims["sub"]))
        except ValueError:
            return None
        try:
            revoked = await self.kv.exists(revoked_key(str(claims["jti"])))
        except Exception as exc:
            # Fail closed: without the denylist we cannot tell a revoked token from a good one.
            logger.warning("revocation denylist unavailable", extra={"error": type(exc).__name__})
            raise ServiceUnavailable() from exc
        if revoked:
            return None
        return Identity(kind="client", subject=subject, claims=claims)
