"""Client public keys for private_key_jwt, and the encrypted secret of client_secret_jwt clients.

Validation happens at registration so the token endpoint only ever sees well-formed key sets.
"""

from __future__ import annotations

import re
from typing import Any

import jwt

from auth_service.core.errors import ValidationFailed
from auth_service.oauth2.keys import KeyEncryptor

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt")
SECRET_METHODS = frozenset({"client_secret_basic", "client_secret_post"})
KEYLESS_METHODS = tuple(m for m in AUTH_METHODS if m != "private_key_jwt")
# Members that only a private (or symmetric) JWK has: never accepted as a client's public key.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
PUBLIC_KTY = frozenset({"EC", "RSA", "OKP"})
MAX_KEYS = 20
# An absolute http(s) URL of visible ASCII with a host (no IPv6 literal: a stray bracket would
# break the fetch). The same regex in Python and in the admin API's JSON Schema.
JWKS_URI_PATTERN = r"^https?://[!$-.0-9:;=@-Z_a-z~]+(?:[/?#][!-~]*)?$"


def client_secret_encryptor(secret: str) -> KeyEncryptor:
    """AES-256-GCM under SIGNING_KEY_ENCRYPTION_KEY, HKDF-separated from the signing keys."""
    return KeyEncryptor(secret, info=b"auth_service client secret encryption v1")


def secret_aad(client_id: object) -> str:
    """Associated data: a ciphertext cannot be moved onto another client's row."""
    return f"client-secret:{client_id}"


def validate_public_jwks(jwks: Any) -> dict[str, Any]:
    """A JWK Set of public asymmetric keys, or ValidationFailed."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise _invalid("jwks must be a JWK Set: an object with a `keys` array.")
    keys = jwks["keys"]
    if not keys or len(keys) > MAX_KEYS:
        raise _invalid(f"jwks must hold between 1 and {MAX_KEYS} keys.")
    for key in keys:
        if not isinstance(key, dict) or key.get("kty") not in PUBLIC_KTY:
            raise _invalid("Each key must be an EC, RSA or OKP public key.")
        if PRIVATE_MEMBERS & key.keys():
            raise _invalid("A key contains private key material; register public keys only.")
        try:
            jwt.PyJWK(key)
        except jwt.PyJWTError as exc:
            raise _invalid("A key cannot be parsed as a JWK.") from exc
    return {"keys": keys}


def validate_jwks_uri(uri: str, *, production: bool) -> str:
    if not re.fullmatch(JWKS_URI_PATTERN, uri) or (production and not uri.startswith("https:")):
        raise _invalid(
            "jwks_uri must be an absolute https URL"
            + ("." if production else " (or http outside production).")
        )
    return uri


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed(message, code="invalid_client_keys")
