"""Verify auth_service access tokens in a resource server (another backend service).

    from auth_service.verifier import TokenVerifier

    verifier = TokenVerifier(
        "https://auth.example.com/.well-known/jwks.json",
        issuer="https://auth.example.com",
        audience="orders-api",
    )

    OrdersReader = Annotated[VerifiedToken, Depends(verifier.require_permissions("orders:read"))]

    @app.get("/orders")
    async def orders(token: OrdersReader): ...

DPoP-bound tokens (RFC 9449, `cnf.jkt`) are verified transparently by the dependency:
`Authorization: DPoP <token>` plus a `DPoP` proof header whose key matches `cnf.jkt`, whose
`ath` is the token's hash, whose `htm`/`htu` are this request's, and whose `jti` is new. A
DPoP-bound token presented as `Bearer` is refused. The replay cache is in-process by default;
pass `dpop_replay_cache` (anything with `first_use(scope, jti, ttl) -> bool`) to share one
between replicas. Behind a proxy, run uvicorn with `--proxy-headers` so `request.url` is the
URL the client used.

Keys are fetched with httpx and cached; an unknown `kid` triggers a refetch (at most once per
`min_refetch_seconds`, so a flood of forged kids cannot hammer the JWKS endpoint). Only the
allow-listed asymmetric algorithms are accepted, and each key only with its own algorithm.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from fastapi import HTTPException, Request

from auth_service.oauth2.dpop import (
    DPOP_ALGORITHMS,
    DpopError,
    DpopProofVerifier,
    MemoryReplayCache,
    ProofReplayCache,
)

__all__ = [
    "InvalidDpopProof",
    "InvalidToken",
    "TokenVerifier",
    "VerifiedToken",
    "require_permissions",
]

_ACCEPTED_TYP = frozenset({"at+jwt", "application/at+jwt"})
_MAX_CACHED = 10_000
_B64URL = re.compile(rb"[A-Za-z0-9_-]*")
_ASYMMETRIC = frozenset({"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "EdDSA"})


class InvalidToken(Exception):
    """The token is not one we accept (the reason is for logs, never for the caller)."""


class InvalidDpopProof(InvalidToken):
    """The token may be fine, but the DPoP proof sent with it is not."""


def _b64(segment: bytes) -> bytes:
    if len(segment) % 4 == 1 or not _B64URL.fullmatch(segment):
        raise InvalidToken("malformed token")
    return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))


def _split(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Compact JWS: (header, claims, signing input, signature), strictly decoded."""
    try:
        raw = token.encode("ascii")
    except UnicodeEncodeError as exc:
        raise InvalidToken("malformed token") from exc
    parts = raw.split(b".")
    if len(parts) != 3:
        raise InvalidToken("malformed token")
    try:
        header = json.loads(_b64(parts[0]))
        claims = json.loads(_b64(parts[1]))
    except ValueError as exc:
        raise InvalidToken("malformed token") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidToken("malformed token")
    if "crit" in header:  # no extensions understood (RFC 7515 §4.1.11)
        raise InvalidToken("unsupported critical header")
    return header, claims, parts[0] + b"." + parts[1], _b64(parts[2])


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    subject: str
    client_id: str
    roles: frozenset[str]
    permissions: frozenset[str]
    claims: dict[str, Any] = field(repr=False)

    @property
    def jkt(self) -> str | None:
        """The DPoP key thumbprint the token is bound to, if it is (RFC 9449 `cnf.jkt`)."""
        cnf = self.claims.get("cnf")
        jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
        return jkt if isinstance(jkt, str) else None


class TokenVerifier:
    def __init__(
        self,
        jwks_url: str,
        *,
        issuer: str,
        audience: str,
        algorithms: Sequence[str] = ("ES256",),
        cache_seconds: float = 300.0,
        min_refetch_seconds: float = 10.0,
        leeway_seconds: float = 0.0,
        http_client: httpx.AsyncClient | None = None,
        dpop_algorithms: Sequence[str] = DPOP_ALGORITHMS,
        dpop_iat_window_seconds: int = 60,
        dpop_replay_cache: ProofReplayCache | None = None,
    ) -> None:
        unsafe = set(algorithms) - _ASYMMETRIC
        if unsafe:
            # HS* with a public JWKS would let anyone holding the public key mint tokens.
            raise ValueError(f"not allowed for JWKS verification: {sorted(unsafe)}")
        self.jwks_url = jwks_url
        self.issuer = issuer
        self.audience = audience
        self.algorithms = frozenset(algorithms)
        self.cache_seconds = cache_seconds
        self.min_refetch_seconds = min_refetch_seconds
        self.leeway = leeway_seconds
        self._http = http_client
        self._keys: dict[str, jwt.PyJWK] = {}
        self._verified: dict[str, tuple[VerifiedToken, float]] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self.dpop = DpopProofVerifier(
            dpop_replay_cache or MemoryReplayCache(),
            algorithms=dpop_algorithms,
            iat_window_seconds=dpop_iat_window_seconds,
        )

    async def verify_dpop(self, token: str, proof: str, *, method: str, url: str) -> VerifiedToken:
        """A DPoP-bound token and the proof sent with it (RFC 9449 §7.1)."""
        verified = await self.verify(token)
        if verified.jkt is None:
            raise InvalidToken("not a DPoP-bound token")
        try:
            checked = await self.dpop.verify(proof, method=method, url=url, access_token=token)
        except DpopError as exc:
            raise InvalidDpopProof(exc.reason) from exc
        if checked.jkt != verified.jkt:
            raise InvalidDpopProof("the proof's key is not the one the token is bound to")
        return verified

    async def verify(self, token: str) -> VerifiedToken:
        """The token's identity if it is a live access token we accept; else `InvalidToken`.

        Parsing and claim checks are done here in one pass (PyJWT's generic decoder parses the
        header twice and checks base64 character by character, which cost more than the
        signature); the signature is checked by PyJWT's algorithm for the key. A token seen
        before is answered from a small cache until its `exp`; the cache is emptied whenever
        the key set changes, so a removed key stops its tokens at the next refresh.
        """
        now = time.time()
        hit = self._verified.get(token)
        if hit is not None and now < hit[1]:
            return hit[0]
        header, claims, signing_input, signature = _split(token)
        if str(header.get("typ", "")).lower() not in _ACCEPTED_TYP:
            raise InvalidToken("not an access token (typ)")
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise InvalidToken("algorithm not allowed")
        key = await self._key(str(header.get("kid", "")))
        if key.algorithm_name != alg:
            raise InvalidToken("algorithm does not match the key")
        try:
            valid = key.Algorithm.verify(signing_input, key.key, signature)
        except Exception as exc:  # malformed signature bytes: the same answer as a bad one
            raise InvalidToken("bad signature") from exc
        if not valid:
            raise InvalidToken("bad signature")
        expires = self._check_claims(claims, now)
        permissions = claims.get("permissions") or []
        roles = claims.get("roles") or []
        verified = VerifiedToken(
            subject=str(claims["sub"]),
            client_id=str(claims.get("client_id", claims["sub"])),
            roles=frozenset(str(r) for r in roles),
            permissions=frozenset(str(p) for p in permissions),
            claims=claims,
        )
        if len(self._verified) >= _MAX_CACHED:
            self._verified.clear()
        self._verified[token] = (verified, expires + self.leeway)
        return verified

    def _check_claims(self, claims: dict[str, Any], now: float) -> float:
        """RFC 7519 checks (exp, nbf, iat, iss, aud) and required claims; returns exp."""
        for name in ("exp", "iat", "iss", "aud", "sub", "jti"):
            if name not in claims:
                raise InvalidToken(f"missing claim {name}")
        exp, iat, nbf = claims["exp"], claims["iat"], claims.get("nbf", 0)
        for value in (exp, iat, nbf):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidToken("exp, iat and nbf must be numbers")
        if now >= exp + self.leeway:
            raise InvalidToken("expired")
        if now < nbf - self.leeway or now < iat - self.leeway:
            raise InvalidToken("not valid yet")
        if claims["iss"] != self.issuer:
            raise InvalidToken("wrong issuer")
        aud = claims["aud"]
        if not (aud == self.audience or (isinstance(aud, list) and self.audience in aud)):
            raise InvalidToken("wrong audience")
        return float(exp)

    async def _key(self, kid: str) -> jwt.PyJWK:
        if time.monotonic() - self._fetched_at > self.cache_seconds:
            await self._refresh(force=True)
        key = self._keys.get(kid)
        if key is None:
            await self._refresh(force=False)  # maybe a key rotated in since the last fetch
            key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("unknown key id")
        return key

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            since = time.monotonic() - self._fetched_at
            if since < min(self.min_refetch_seconds, self.cache_seconds if force else float("inf")):
                return  # someone else just fetched, or we refetched too recently
            try:
                if self._http is not None:
                    response = await self._http.get(self.jwks_url)
                else:
                    async with httpx.AsyncClient(timeout=5.0) as client:
                        response = await client.get(self.jwks_url)
                response.raise_for_status()
                jwks = jwt.PyJWKSet.from_dict(response.json())
            except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
                self._fetched_at = time.monotonic()  # back off; keep the keys we have
                if not self._keys:
                    raise InvalidToken("signing keys unavailable") from exc
                return
            keys = {
                key.key_id: key
                for key in jwks.keys
                if key.key_id and key.algorithm_name in self.algorithms
            }
            if keys.keys() != self._keys.keys():
                self._verified.clear()  # a removed key must stop its tokens now
            self._keys = keys
            self._fetched_at = time.monotonic()

    def require_permissions(
        self, *permissions: str
    ) -> Callable[[Request], Awaitable[VerifiedToken]]:
        """FastAPI dependency: a valid bearer token holding every permission named."""
        needed = frozenset(permissions)

        algs = " ".join(sorted(self.dpop.algorithms))
        challenge = f'Bearer, DPoP algs="{algs}"'

        async def dependency(request: Request) -> VerifiedToken:
            header = request.headers.get("authorization", "")
            scheme, _, value = header.partition(" ")
            token, kind = value.strip(), scheme.lower()
            if kind not in ("bearer", "dpop") or not token:
                raise HTTPException(
                    401, "A bearer token is required.", {"WWW-Authenticate": challenge}
                )
            try:
                if kind == "dpop":
                    proofs = request.headers.getlist("dpop")
                    if len(proofs) != 1:
                        raise InvalidDpopProof("exactly one DPoP proof is required")
                    url = str(request.url.replace(query=None, fragment=None))
                    verified = await self.verify_dpop(
                        token, proofs[0], method=request.method, url=url
                    )
                else:
                    verified = await self.verify(token)
                    if verified.jkt is not None:
                        # RFC 9449 §7.2: a bound token without its proof is worthless.
                        raise InvalidToken("DPoP-bound token presented as a bearer token")
            except InvalidDpopProof as exc:
                raise HTTPException(
                    401,
                    "The DPoP proof is invalid.",
                    {"WWW-Authenticate": f'DPoP error="invalid_dpop_proof", algs="{algs}"'},
                ) from exc
            except InvalidToken as exc:
                scheme_name = "DPoP" if kind == "dpop" else "Bearer"
                raise HTTPException(
                    401,
                    "The token is invalid or expired.",
                    {"WWW-Authenticate": f'{scheme_name} error="invalid_token"'},
                ) from exc
            if not needed <= verified.permissions:
                raise HTTPException(
                    403,
                    "The token lacks a required permission.",
                    {"WWW-Authenticate": 'Bearer error="insufficient_scope"'},
                )
            return verified

        return dependency


def require_permissions(*permissions: str) -> Callable[[Request], Awaitable[VerifiedToken]]:
    """`TokenVerifier.require_permissions` with the verifier at `app.state.token_verifier`."""

    async def dependency(request: Request) -> VerifiedToken:
        verifier: TokenVerifier = request.app.state.token_verifier
        return await verifier.require_permissions(*permissions)(request)

    return dependency
