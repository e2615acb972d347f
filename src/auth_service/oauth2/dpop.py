"""DPoP proofs (RFC 9449): checked by the token endpoint and by resource servers.

Self-contained (PyJWT, the standard library and oauth2/jws.py only) so that
`auth_service.verifier` can use it in other services without the rest of auth_service.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import jwt

from auth_service.oauth2.jws import MalformedJws, parse, verify_with_jwk

__all__ = [
    "DPOP_ALGORITHMS",
    "DpopError",
    "DpopNonces",
    "DpopProof",
    "DpopProofVerifier",
    "MemoryReplayCache",
    "access_token_hash",
    "normalise_uri",
    "thumbprint",
]

PROOF_TYP = "dpop+jwt"
# Asymmetric only: a proof shows possession of a private key.
DPOP_ALGORITHMS = ("ES256", "ES384", "ES512", "RS256", "PS256", "EdDSA")
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# RFC 7638 §3.2: the required members of each key type, the only ones hashed.
_THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}
_MAX_PROOF = 8_192
_DEFAULT_PORTS = {"http": 80, "https": 443}


class DpopError(Exception):
    """A proof we refuse. `use_nonce`: the fix is to retry with our current nonce."""

    def __init__(self, reason: str, *, use_nonce: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.use_nonce = use_nonce


class ProofReplayCache(Protocol):
    async def first_use(self, scope: str, jti: str, ttl_seconds: int) -> bool: ...


class MemoryReplayCache:
    """In-process replay cache (one process only: use a shared one behind several replicas)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._seen: dict[str, float] = {}

    async def first_use(self, scope: str, jti: str, ttl_seconds: int) -> bool:
        now = time.monotonic()
        if len(self._seen) >= self.max_entries:
            self._seen = {k: v for k, v in self._seen.items() if v > now}
        key = hashlib.sha256(f"{scope}\x00{jti}".encode()).hexdigest()
        expires = self._seen.get(key)
        if expires is not None and expires > now:
            return False
        self._seen[key] = now + max(1, ttl_seconds)
        return True


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK SHA-256 thumbprint, base64url: the `cnf.jkt` of a DPoP-bound token."""
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None or any(not isinstance(jwk.get(m), str) for m in members):
        raise DpopError("unsupported or incomplete jwk")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode()).digest())


def access_token_hash(token: str) -> str:
    """The `ath` claim: base64url SHA-256 of the access token's ASCII."""
    return _b64(hashlib.sha256(token.encode("ascii")).digest())


@functools.lru_cache(maxsize=1024)  # the same few endpoint URLs, request after request
def normalise_uri(uri: str) -> str:
    """RFC 9449 §4.3: compare without query and fragment, scheme and host case-insensitively,
    default ports dropped (RFC 3986 §6.2.2 and §6.2.3)."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise DpopError("htu is not a URI") from exc
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or _DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


class DpopNonces:
    """Stateless server nonces: an HMAC of the current time window, so replicas agree."""

    def __init__(self, secret: bytes, lifetime_seconds: int) -> None:
        self.secret = secret
        self.lifetime = max(1, lifetime_seconds)

    def _at(self, window: int) -> str:
        digest = hmac.new(self.secret, f"dpop-nonce:{window}".encode(), hashlib.sha256).digest()
        return _b64(digest[:18])

    def current(self) -> str:
        return self._at(int(time.time()) // self.lifetime)

    def valid(self, nonce: object) -> bool:
        if not isinstance(nonce, str):
            return False
        window = int(time.time()) // self.lifetime
        # The previous window too: a nonce handed out just before a rollover stays good.
        return any(hmac.compare_digest(nonce, self._at(w)) for w in (window, window - 1))


@dataclass(frozen=True, slots=True)
class DpopProof:
    jkt: str
    claims: dict[str, Any]


class DpopProofVerifier:
    def __init__(
        self,
        replay: ProofReplayCache,
        *,
        algorithms: Sequence[str] = DPOP_ALGORITHMS,
        iat_window_seconds: int = 60,
        nonces: DpopNonces | None = None,
    ) -> None:
        unsafe = set(algorithms) - set(DPOP_ALGORITHMS)
        if unsafe:
            raise ValueError(f"not allowed for DPoP: {sorted(unsafe)}")
        self.replay = replay
        self.algorithms = frozenset(algorithms)
        self.window = iat_window_seconds
        self.nonces = nonces
        # Clients reuse one DPoP key for many requests: parse each public key once.
        self._keys: dict[tuple[str, str], Any] = {}

    def _key(self, jkt: str, jwk: dict[str, Any], alg: str) -> Any:
        cached = self._keys.get((jkt, alg))
        if cached is None:
            try:  # fails unless the key type suits the algorithm
                cached = jwt.PyJWK(jwk, algorithm=alg)
            except (jwt.PyJWTError, ValueError, TypeError) as exc:
                raise DpopError(f"unusable jwk: {type(exc).__name__}") from exc
            if len(self._keys) >= 10_000:
                self._keys.clear()
            # The thumbprint covers every member that defines the key: same jkt, same key.
            self._keys[(jkt, alg)] = cached
        return cached

    async def verify(
        self, proof: str, *, method: str, url: str, access_token: str | None = None
    ) -> DpopProof:
        """The proof's key thumbprint, or DpopError. `access_token`: also check `ath`."""
        if not proof or len(proof) > _MAX_PROOF:
            raise DpopError("missing or oversized proof")
        try:
            jws = parse(proof)
        except MalformedJws as exc:
            raise DpopError("malformed proof") from exc
        header, claims = jws.header, jws.claims
        if header.get("typ") != PROOF_TYP:
            raise DpopError("typ is not dpop+jwt")
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise DpopError("algorithm not allowed")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise DpopError("no jwk in the header")
        if _PRIVATE_MEMBERS & jwk.keys():
            raise DpopError("the jwk contains private key material")
        jkt = thumbprint(jwk)
        if not verify_with_jwk(jws, self._key(jkt, jwk, str(alg))):
            raise DpopError("signature does not verify")
        for name in ("jti", "htm", "htu", "iat"):
            if name not in claims:
                raise DpopError(f"{name} missing")
        exp = claims.get("exp")
        if exp is not None and (not isinstance(exp, int | float) or exp < time.time()):
            raise DpopError("proof expired")
        if claims["htm"] != method:
            raise DpopError("htm does not match the request method")
        htu = claims["htu"]
        if not isinstance(htu, str) or normalise_uri(htu) != normalise_uri(url):
            raise DpopError("htu does not match the request URI")
        iat = claims["iat"]
        if not isinstance(iat, int | float) or abs(time.time() - iat) > self.window:
            raise DpopError("iat outside the accepted window")
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti or len(jti) > 512:
            raise DpopError("jti missing or malformed")
        if access_token is not None and not (
            isinstance(claims.get("ath"), str)
            and hmac.compare_digest(claims["ath"], access_token_hash(access_token))
        ):
            raise DpopError("ath does not match the access token")
        if self.nonces is not None and not self.nonces.valid(claims.get("nonce")):
            raise DpopError("a current server nonce is required", use_nonce=True)
        # Remembered for the whole window either side of iat: the span in which it is valid.
        if not await self.replay.first_use(jkt, jti, 2 * self.window + 1):
            raise DpopError("proof replayed (jti)")
        return DpopProof(jkt, claims)
