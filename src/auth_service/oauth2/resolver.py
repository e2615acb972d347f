"""Bearer tokens we issued, resolved to a client identity for admin endpoints."""

from __future__ import annotations

import logging
import uuid

from auth_service.core.security import Identity
from auth_service.oauth2.tokens import TokenCodec
from auth_service.revocation.service import RevocationStore

logger = logging.getLogger("auth_service.oauth2.resolver")


class M2MTokenResolver:
    """Verifies locally (key ring in memory), then consults the revocation denylist.

    Only tokens for our own audience (DEFAULT_AUDIENCE) are accepted here: a token minted
    for another resource server must not open the admin API.
    """

    def __init__(self, codec: TokenCodec, revocations: RevocationStore, audience: str) -> None:
        self.codec = codec
        self.revocations = revocations
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
        # Fails closed (503): without the denylist a revoked token cannot be told from a good one.
        if await self.revocations.token_revoked(str(claims["jti"])):
            return None
        return Identity(kind="client", subject=subject, claims=claims)
