"""Signing keys: generation, encryption at rest, and the in-memory key ring used per request.

The hot path never touches the database or decrypts anything: `KeyManager.ring` is an
immutable snapshot rebuilt in the background every SIGNING_KEYS_REFRESH_SECONDS, so a key
rotated by another replica (or `auth-service keys rotate`) is picked up without a restart.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jwt.algorithms import ECAlgorithm
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_service.config import Settings, SigningAlgorithm
from auth_service.oauth2.models import SigningKey
from auth_service.oauth2.repository import SigningKeyRepository

logger = logging.getLogger("auth_service.oauth2.keys")

ASYMMETRIC_ALGORITHM = "ES256"
_ENVELOPE_VERSION = "v1."


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


class KeyEncryptor:
    """AES-256-GCM with a key derived from SIGNING_KEY_ENCRYPTION_KEY by HKDF-SHA256.

    The kid is bound as associated data, so a ciphertext cannot be swapped onto another row.
    """

    def __init__(
        self, secret: str, info: bytes = b"auth_service signing key encryption v1"
    ) -> None:
        # `info` separates uses of the one configured secret (signing keys, client secrets).
        derived = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=info,
        ).derive(secret.encode())
        self._aead = AESGCM(derived)

    def encrypt(self, plaintext: bytes, kid: str) -> str:
        nonce = os.urandom(12)
        return _ENVELOPE_VERSION + _b64(nonce + self._aead.encrypt(nonce, plaintext, kid.encode()))

    def decrypt(self, envelope: str, kid: str) -> bytes:
        if not envelope.startswith(_ENVELOPE_VERSION):
            raise ValueError("unknown key envelope version")
        raw = _unb64(envelope[len(_ENVELOPE_VERSION) :])
        return self._aead.decrypt(raw[:12], raw[12:], kid.encode())


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint of an EC public JWK, used as its kid."""
    canonical = json.dumps(
        {k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True
    )
    return _b64(hashlib.sha256(canonical.encode()).digest())


def generate_signing_key(encryptor: KeyEncryptor) -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk: dict[str, Any] = dict(ECAlgorithm.to_jwk(private.public_key(), as_dict=True))
    kid = jwk_thumbprint(jwk)
    jwk.update({"kid": kid, "alg": ASYMMETRIC_ALGORITHM, "use": "sig"})
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return SigningKey(
        kid=kid,
        algorithm=ASYMMETRIC_ALGORITHM,
        public_jwk=jwk,
        private_key_encrypted=encryptor.encrypt(pem, kid),
    )


@dataclass(frozen=True, slots=True)
class VerificationKey:
    kid: str
    algorithm: str  # the only algorithm accepted for this kid: no HS/ES confusion
    key: Any  # EllipticCurvePublicKey, or the HMAC secret bytes


@dataclass(frozen=True, slots=True)
class KeyRing:
    """An immutable snapshot: swapped whole, so readers never see a half-built ring."""

    signing_kid: str
    signing_algorithm: str
    signing_key: Any
    verification: Mapping[str, VerificationKey]
    jwks: Mapping[str, Any] = field(default_factory=lambda: {"keys": []})
    # The JWS protected header, encoded once per ring instead of once per token.
    header_segment: bytes = b""
    # Unix time the signing key was created, for the key-age alert (0: HS256, never rotated).
    signing_created_at: float = 0.0

    def sign(self, payload: Mapping[str, Any]) -> str:
        """Compact JWS of `payload` with the active key (what jwt.encode does, minus overhead)."""
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        signing_input = self.header_segment + b"." + body.encode()
        if self.signing_algorithm == "HS256":
            signature = hmac.new(self.signing_key, signing_input, hashlib.sha256).digest()
        else:
            der = self.signing_key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
            r, s = decode_dss_signature(der)
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JWS wants raw r||s
        return f"{signing_input.decode()}.{_b64(signature)}"


def _header_segment(kid: str, algorithm: str) -> bytes:
    header = {"alg": algorithm, "kid": kid, "typ": "at+jwt"}
    return _b64(json.dumps(header, separators=(",", ":")).encode()).encode()


def hs256_kid(secret: bytes) -> str:
    # Derived from the secret so replicas agree, and one-way so it reveals nothing.
    return "hs256-" + hashlib.sha256(b"kid:" + secret).hexdigest()[:16]


def build_ring(
    keys: Sequence[SigningKey],
    *,
    settings: Settings,
    private_keys: Mapping[str, ec.EllipticCurvePrivateKey],
    now: datetime,
) -> KeyRing:
    """Which keys verify and which one signs, from the rows and the decrypted private keys."""
    ttl = timedelta(seconds=settings.access_token_ttl_seconds)
    verification: dict[str, VerificationKey] = {}
    published: list[dict[str, Any]] = []
    active: SigningKey | None = None
    for row in keys:  # newest first
        if row.retired_at is not None and row.retired_at + ttl <= now:
            continue  # every token it signed has expired
        if row.algorithm != ASYMMETRIC_ALGORITHM or row.kid not in private_keys:
            continue
        verification[row.kid] = VerificationKey(
            row.kid, row.algorithm, private_keys[row.kid].public_key()
        )
        published.append(dict(row.public_jwk))
        if active is None and row.retired_at is None:
            active = row

    if settings.m2m_signing_algorithm is SigningAlgorithm.HS256:
        secret = settings.m2m_jwt_secret_key.get_secret_value().encode()
        kid = hs256_kid(secret)
        # Never published: a shared secret in a JWKS would let anyone mint tokens.
        verification[kid] = VerificationKey(kid, "HS256", secret)
        return KeyRing(
            kid, "HS256", secret, verification, {"keys": published}, _header_segment(kid, "HS256")
        )
    if active is None:
        raise RuntimeError(
            "no usable active signing key (check SIGNING_KEY_ENCRYPTION_KEY, or run"
            " `auth-service keys rotate`)"
        )
    return KeyRing(
        active.kid,
        ASYMMETRIC_ALGORITHM,
        private_keys[active.kid],
        verification,
        {"keys": published},
        _header_segment(active.kid, ASYMMETRIC_ALGORITHM),
        active.created_at.timestamp() if active.created_at else 0.0,
    )


class KeyManager:
    """Holds the current `KeyRing` and refreshes it from the database in the background."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        settings: Settings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self.encryptor = KeyEncryptor(settings.signing_key_encryption_key.get_secret_value())
        self.clock = clock
        self._private: dict[str, ec.EllipticCurvePrivateKey] = {}
        self._task: asyncio.Task[None] | None = None
        self.ring: KeyRing

    async def start(self) -> None:
        """Load keys (creating the first one if there is none) and start the refresh loop."""
        if self.settings.m2m_signing_algorithm is SigningAlgorithm.ES256:
            async with self.session_factory.begin() as session:
                await ensure_active_key(session, self.encryptor)
        await self.refresh()
        self._task = asyncio.create_task(self._refresh_loop(), name="signing-keys-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def refresh(self) -> None:
        async with self.session_factory() as session:
            rows = await SigningKeyRepository(session).all_newest_first()
        for row in rows:
            if row.kid not in self._private and row.algorithm == ASYMMETRIC_ALGORITHM:
                # Decrypted once per kid and kept; never on the request path.
                try:
                    pem = await asyncio.to_thread(
                        self.encryptor.decrypt, row.private_key_encrypted, row.kid
                    )
                except (InvalidTag, ValueError):
                    logger.error(
                        "cannot decrypt signing key; was SIGNING_KEY_ENCRYPTION_KEY changed?",
                        extra={"kid": row.kid},
                    )
                    continue
                key = serialization.load_pem_private_key(pem, password=None)
                if isinstance(key, ec.EllipticCurvePrivateKey):
                    self._private[row.kid] = key
        present = {row.kid for row in rows}
        for kid in list(self._private):
            if kid not in present:  # removed from the database: forget it
                del self._private[kid]
        self.ring = build_ring(
            rows, settings=self.settings, private_keys=self._private, now=self.clock()
        )

    async def _refresh_loop(self) -> None:
        interval = max(1, self.settings.signing_keys_refresh_seconds)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep serving with the last good ring
                logger.warning("signing key refresh failed", exc_info=True)


async def ensure_active_key(session: AsyncSession, encryptor: KeyEncryptor) -> None:
    """Create the first signing key unless one is active. Safe with replicas starting at once."""
    repo = SigningKeyRepository(session)
    await repo.lock()
    if not await repo.has_active():
        await repo.add(generate_signing_key(encryptor))


async def rotate_keys(session: AsyncSession, encryptor: KeyEncryptor, ttl_seconds: int) -> str:
    """Add a new active key, retire the others, drop keys whose tokens have all expired."""
    repo = SigningKeyRepository(session)
    await repo.lock()
    key = generate_signing_key(encryptor)
    await repo.add(key)
    await repo.retire_all_except(key.kid)
    await repo.delete_retired_before(datetime.now(UTC) - timedelta(seconds=ttl_seconds))
    return key.kid
