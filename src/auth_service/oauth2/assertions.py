"""Client authentication by signed JWT assertion (RFC 7523 §2.2, RFC 7521; OIDC Core §9).

`private_key_jwt`: signed with the client's private key, checked against its registered JWK
Set (inline, or fetched from `jwks_uri`). `client_secret_jwt`: an HMAC with the client's raw
secret, which such clients keep AES-GCM encrypted (docs/client-secrets.md).

Every failure is the same `invalid_client` for the caller; the reason is logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
from cryptography.exceptions import InvalidTag

from auth_service.clients.keys import PRIVATE_MEMBERS, secret_aad
from auth_service.clients.repository import ClientCredentials
from auth_service.core.errors import ServiceUnavailable
from auth_service.core.kv import KeyValueStore
from auth_service.oauth2.client_cache import ClientCache
from auth_service.oauth2.errors import invalid_client
from auth_service.oauth2.jws import MalformedJws, parse, verify_hmac, verify_with_jwk
from auth_service.oauth2.keys import KeyEncryptor

logger = logging.getLogger("auth_service.oauth2.assertions")

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASYMMETRIC_ALGORITHMS = (
    "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA",
)  # fmt: skip
# Generated secrets are 47 bytes: enough for HS256 (RFC 7518 §3.2 wants a key at least as long
# as the hash), not for HS384/HS512, so those are not offered.
HMAC_ALGORITHMS = ("HS256",)
_MAX_ASSERTION = 16_384


class AssertionRefused(Exception):
    """Why an assertion was refused: for the log only."""


@dataclass(frozen=True, slots=True)
class AssertionAuth:
    """client_assertion as presented, with the optional client_id parameter."""

    assertion: str
    client_id: str | None


@dataclass(slots=True)
class _KeySet:
    """One client's public keys, parsed lazily per (key, algorithm) and memoised."""

    source: Any
    keys: Sequence[dict[str, Any]]
    fetched_at: float = field(default_factory=time.monotonic)
    parsed: dict[tuple[int, str], jwt.PyJWK | None] = field(default_factory=dict)

    def candidates(self, kid: str | None, alg: str) -> list[jwt.PyJWK]:
        found: list[jwt.PyJWK] = []
        for index, data in enumerate(self.keys):
            if kid is not None and data.get("kid") != kid:
                continue
            if data.get("alg") not in (None, alg) or data.get("use") not in (None, "sig"):
                continue
            memo = (index, alg)
            if memo not in self.parsed:
                try:  # the header's alg must suit the key type, or this fails
                    self.parsed[memo] = jwt.PyJWK(data, algorithm=alg)
                except (jwt.PyJWTError, ValueError, TypeError):
                    self.parsed[memo] = None
            key = self.parsed[memo]
            if key is not None:
                found.append(key)
        return found


class ClientKeySets:
    """Registered public keys of private_key_jwt clients.

    Inline `jwks` are parsed once per loaded credentials object. A `jwks_uri` is fetched with
    a timeout and cached; an unknown kid refetches, at most once per `min_refetch_seconds`.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        cache_seconds: float,
        min_refetch_seconds: float,
        production: bool,
    ) -> None:
        self.http = http
        self.cache_seconds = cache_seconds
        self.min_refetch_seconds = min_refetch_seconds
        self.production = production
        self._sets: dict[uuid.UUID, _KeySet] = {}
        self._locks: dict[uuid.UUID, asyncio.Lock] = {}

    async def candidates(self, client: ClientCredentials, kid: str | None, alg: str) -> list[Any]:
        if client.jwks is not None:
            entry = self._sets.get(client.id)
            if entry is None or entry.source is not client.jwks:
                entry = _KeySet(client.jwks, _public_keys(client.jwks))
                self._remember(client.id, entry)
            return entry.candidates(kid, alg)
        if client.jwks_uri is None:
            raise AssertionRefused("client has no registered keys")
        entry = self._sets.get(client.id)
        now = time.monotonic()
        if entry is None or entry.source != client.jwks_uri:
            entry = await self._fetch(client, None)
        elif now - entry.fetched_at > self.cache_seconds:
            entry = await self._fetch(client, entry)
        found = entry.candidates(kid, alg)
        if not found and time.monotonic() - entry.fetched_at >= self.min_refetch_seconds:
            entry = await self._fetch(client, entry)  # maybe the client rotated its keys
            found = entry.candidates(kid, alg)
        return found

    async def _fetch(self, client: ClientCredentials, seen: _KeySet | None) -> _KeySet:
        uri = str(client.jwks_uri)
        lock = self._locks.setdefault(client.id, asyncio.Lock())
        async with lock:
            current = self._sets.get(client.id)
            if current is not None and current is not seen and current.source == uri:
                return current  # another request refetched while we waited
            if self.production and not uri.startswith("https://"):
                raise AssertionRefused("jwks_uri is not https")
            try:
                response = await self.http.get(uri, headers={"Accept": "application/json"})
                response.raise_for_status()
                keys = _public_keys(response.json())
            except (httpx.HTTPError, ValueError, AssertionRefused) as exc:
                logger.warning(
                    "client jwks_uri fetch failed",
                    extra={"client_id": str(client.id), "error_type": type(exc).__name__},
                )
                if seen is not None and seen.source == uri:
                    seen.fetched_at = time.monotonic()  # back off; keep the keys we had
                    return seen
                raise AssertionRefused("jwks_uri unavailable") from exc
            entry = _KeySet(uri, keys)
            self._remember(client.id, entry)
            return entry

    def _remember(self, client_id: uuid.UUID, entry: _KeySet) -> None:
        if len(self._sets) >= 10_000:
            self._sets.clear()
        self._sets[client_id] = entry


def _public_keys(jwks: Any) -> list[dict[str, Any]]:
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise AssertionRefused("not a JWK Set")
    return [
        key for key in jwks["keys"] if isinstance(key, dict) and not (PRIVATE_MEMBERS & key.keys())
    ]


class ReplayCache:
    """`jti` values seen, until they expire. Fails closed: no store, no authentication (503)."""

    def __init__(self, kv: KeyValueStore, namespace: str) -> None:
        self.kv = kv
        self.namespace = namespace

    async def first_use(self, scope: str, jti: str, ttl_seconds: int) -> bool:
        # Hashed: a jti is attacker-chosen text of any length.
        digest = hashlib.sha256(f"{scope}\x00{jti}".encode()).hexdigest()[:40]
        try:
            return await self.kv.add(f"{self.namespace}:{digest}", "1", max(1, ttl_seconds))
        except Exception as exc:  # Redis down: refuse rather than skip the replay check
            logger.warning(
                "replay cache unavailable",
                extra={"namespace": self.namespace, "error_type": type(exc).__name__},
            )
            raise ServiceUnavailable() from exc


class ClientAssertionVerifier:
    def __init__(
        self,
        cache: ClientCache,
        key_sets: ClientKeySets,
        replay: ReplayCache,
        encryptor: KeyEncryptor,
        *,
        audiences: Iterable[str],
        max_lifetime_seconds: int,
        leeway_seconds: int,
    ) -> None:
        self.cache = cache
        self.key_sets = key_sets
        self.replay = replay
        self.encryptor = encryptor
        self.audiences = frozenset(audiences)
        self.max_lifetime = max_lifetime_seconds
        self.leeway = leeway_seconds

    async def authenticate(self, auth: AssertionAuth) -> ClientCredentials:
        """The client that signed this assertion, or `invalid_client` (reason logged)."""
        try:
            return await self._authenticate(auth)
        except AssertionRefused as exc:
            logger.warning("client assertion refused", extra={"reason": str(exc)})
            raise invalid_client() from None

    async def _authenticate(self, auth: AssertionAuth) -> ClientCredentials:
        try:
            jws = parse(auth.assertion)
        except MalformedJws as exc:
            raise AssertionRefused(str(exc)) from exc
        header, claims = jws.header, jws.claims  # trusted only once the signature verifies
        issuer, subject = claims.get("iss"), claims.get("sub")
        if not isinstance(issuer, str) or issuer != subject:
            raise AssertionRefused("iss and sub must both be the client id")
        if auth.client_id is not None and auth.client_id != issuer:
            raise AssertionRefused("client_id parameter does not match the assertion")
        try:
            client_uuid = uuid.UUID(issuer)
        except ValueError as exc:
            raise AssertionRefused("iss is not a client id") from exc
        client = await self.cache.credentials(client_uuid)
        if client is None or not client.is_active:
            raise AssertionRefused("unknown or inactive client")
        alg = header.get("alg")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AssertionRefused("kid is not a string")
        keys: list[Any]
        if client.auth_method == "private_key_jwt":
            if alg not in ASYMMETRIC_ALGORITHMS:
                raise AssertionRefused("algorithm not allowed for private_key_jwt")
            keys = await self.key_sets.candidates(client, kid, str(alg))
            if not keys:
                raise AssertionRefused("no registered key matches kid and alg")
        elif client.auth_method == "client_secret_jwt":
            if alg not in HMAC_ALGORITHMS:
                raise AssertionRefused("algorithm not allowed for client_secret_jwt")
            keys = self._secrets(client)  # AES-GCM of a few bytes: microseconds
        else:
            raise AssertionRefused("the client is not registered for assertion authentication")
        if client.auth_method == "private_key_jwt":
            verified = any(verify_with_jwk(jws, key) for key in keys)
        else:
            verified = any(verify_hmac(jws, str(alg), secret) for secret in keys)
        if not verified:
            raise AssertionRefused("signature does not verify")
        ttl = self._check_claims(claims)
        if not await self.replay.first_use(str(client.id), str(claims["jti"]), ttl):
            raise AssertionRefused("jti replayed")
        return client

    def _secrets(self, client: ClientCredentials) -> list[Any]:
        encrypted = [client.secret_encrypted]
        if (
            client.previous_secret_encrypted
            and client.previous_secret_expires_at is not None
            and client.previous_secret_expires_at > datetime.now(UTC)
        ):
            encrypted.append(client.previous_secret_encrypted)
        secrets: list[Any] = []
        for envelope in encrypted:
            if envelope is None:
                continue
            try:
                secrets.append(self.encryptor.decrypt(envelope, secret_aad(client.id)))
            except (InvalidTag, ValueError):
                logger.error(
                    "cannot decrypt a client secret; was SIGNING_KEY_ENCRYPTION_KEY changed?",
                    extra={"client_id": str(client.id)},
                )
        if not secrets:
            raise AssertionRefused("no usable client secret")
        return secrets

    def _check_claims(self, claims: dict[str, Any]) -> int:
        """Audience, lifetime and issue time; returns how long the jti must be remembered."""
        for name in ("exp", "aud", "jti"):
            if name not in claims:
                raise AssertionRefused(f"{name} missing")
        aud = claims["aud"]
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or not self.audiences.intersection(
            a for a in audiences if isinstance(a, str)
        ):
            raise AssertionRefused("aud is not our issuer or token endpoint")
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti or len(jti) > 512:
            raise AssertionRefused("jti missing or malformed")
        now = time.time()
        exp = claims["exp"]
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise AssertionRefused("exp is not a number")
        if exp + self.leeway < now:
            raise AssertionRefused("expired")
        if exp - now > self.max_lifetime + self.leeway:
            raise AssertionRefused("exp is further away than the maximum lifetime")
        nbf = claims.get("nbf")
        if nbf is not None and (not isinstance(nbf, int | float) or nbf > now + self.leeway):
            raise AssertionRefused("not valid yet (nbf)")
        iat = claims.get("iat")
        if iat is not None:
            if not isinstance(iat, int | float) or iat > now + self.leeway:
                raise AssertionRefused("iat is in the future")
            if exp - iat > self.max_lifetime + self.leeway:
                raise AssertionRefused("lifetime (exp - iat) exceeds the maximum")
        return int(exp - now + self.leeway) + 1
