"""Our key ring as the user-token verifier's key source: local user tokens use the same JWKS."""

from __future__ import annotations

import jwt

from auth_service.oauth2.keys import KeyManager


class RingKeySource:
    def __init__(self, keys: KeyManager) -> None:
        self.keys = keys
        self._parsed: dict[str, jwt.PyJWK] = {}

    async def get(self, kid: str) -> jwt.PyJWK | None:
        ring = self.keys.ring  # read once: a refresh may swap it
        if kid not in ring.verification:
            return None  # unknown, or retired long enough that its tokens have expired
        key = self._parsed.get(kid)
        if key is None:
            for data in ring.jwks.get("keys", []):
                if data.get("kid") == kid:
                    key = self._parsed[kid] = jwt.PyJWK(dict(data))
        return key
