"""Client secrets: 256 random bits, URL-safe, stored only as an HMAC-SHA256 digest.

Why a keyed fast hash and not argon2: see docs/client-secrets.md. In short, the secret has
256 bits of entropy, so there is nothing to brute-force; a slow hash would only cap the token
endpoint at a few grants per second. The pepper (CLIENT_SECRET_PEPPER) keeps a leaked table
useless without the server's configuration.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SECRET_PREFIX = "acs_"  # noqa: S105 - "app client secret": recognisable in logs and by secret scanners
_HASH_SCHEME = "hmac-sha256$"
# Compared against when the client does not exist, so both paths cost one HMAC + compare.
DUMMY_DIGEST = _HASH_SCHEME + "0" * 64


def generate_secret() -> str:
    """32 bytes from the OS CSPRNG, base64url without padding: only `A-Z a-z 0-9 - _`."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


class SecretHasher:
    def __init__(self, pepper: str) -> None:
        self._key = pepper.encode()

    def hash(self, secret: str) -> str:
        digest = hmac.new(self._key, secret.encode(), hashlib.sha256).hexdigest()
        return _HASH_SCHEME + digest

    def verify(self, secret: str, stored: str | None) -> bool:
        """Constant-time check; `stored=None` (unknown client) still does the same work."""
        candidate = self.hash(secret)
        return hmac.compare_digest(candidate, stored or DUMMY_DIGEST) and stored is not None
