"""Client authentication, the client-credentials grant, introspection and revocation."""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from auth_service.clients.keys import SECRET_METHODS
from auth_service.clients.repository import ClientCredentials, ClientCredentialsReader
from auth_service.clients.secrets import DUMMY_DIGEST, SecretHasher
from auth_service.oauth2.assertions import AssertionAuth, ClientAssertionVerifier
from auth_service.oauth2.client_cache import ClientCache
from auth_service.oauth2.dpop import DpopError, DpopNonces, DpopProofVerifier
from auth_service.oauth2.errors import OAuthError, invalid_client, invalid_request
from auth_service.oauth2.tokens import TokenCodec
from auth_service.revocation.service import RevocationStore

logger = logging.getLogger("auth_service.oauth2.service")

GRANT_CLIENT_CREDENTIALS = "client_credentials"
# Every grant_type the token endpoint accepts: the OpenAPI enum and the server metadata's
# grant_types_supported are built from this list, so a new grant is added here once.
GRANT_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - a URN
GRANT_TYPES: tuple[str, ...] = (GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE)


@dataclass(frozen=True, slots=True)
class ClientAuth:
    """Client credentials as presented (Basic or form), already decoded."""

    client_id: str
    client_secret: str


class OAuthService:
    """Stateless: built once per process at startup and shared by all requests."""

    def __init__(
        self,
        clients: ClientCredentialsReader,
        cache: ClientCache,
        *,
        hasher: SecretHasher,
        codec: TokenCodec,
        revocations: RevocationStore,
        default_audience: str,
        assertions: ClientAssertionVerifier | None = None,
        dpop: DpopProofVerifier | None = None,
        token_url: str = "",
    ) -> None:
        self.clients = clients
        self.cache = cache
        self.hasher = hasher
        self.codec = codec
        self.revocations = revocations
        self.default_audience = default_audience
        self.assertions = assertions
        self.dpop = dpop
        self.token_url = token_url

    @property
    def dpop_nonces(self) -> DpopNonces | None:
        return self.dpop.nonces if self.dpop is not None else None

    async def dpop_binding(
        self, client: ClientCredentials, proofs: list[str]
    ) -> dict[str, str] | None:
        """RFC 9449 §5: the `cnf` of the token to issue, from the request's DPoP proof."""
        if not proofs:
            if client.dpop_bound:
                raise OAuthError("invalid_dpop_proof", "This client must send a DPoP proof.")
            return None
        if len(proofs) > 1 or self.dpop is None:
            raise OAuthError("invalid_dpop_proof", "Send exactly one DPoP proof.")
        try:
            proof = await self.dpop.verify(proofs[0], method="POST", url=self.token_url)
        except DpopError as exc:
            logger.warning(
                "dpop proof refused", extra={"reason": exc.reason, "client_id": str(client.id)}
            )
            if exc.use_nonce and self.dpop.nonces is not None:
                raise OAuthError(
                    "use_dpop_nonce",
                    "Authorization server requires nonce in DPoP proof.",
                    headers={"DPoP-Nonce": self.dpop.nonces.current()},
                ) from None
            raise OAuthError("invalid_dpop_proof", "The DPoP proof is invalid.") from None
        return {"jkt": proof.jkt}

    async def authenticate(self, auth: ClientAuth | AssertionAuth) -> ClientCredentials:
        """The client behind these credentials, or `invalid_client` (same for every failure)."""
        if isinstance(auth, AssertionAuth):
            if self.assertions is None:
                raise invalid_client()
            return await self.assertions.authenticate(auth)
        client: ClientCredentials | None = None
        try:
            client_uuid = uuid.UUID(auth.client_id)
        except ValueError:
            client_uuid = None
        if client_uuid is not None:
            client = await self.cache.credentials(client_uuid)
        candidate = self.hasher.hash(auth.client_secret)
        current = (client.secret_hash if client else None) or DUMMY_DIGEST
        previous = DUMMY_DIGEST
        if (
            client is not None
            and client.previous_secret_hash
            and client.previous_secret_expires_at is not None
            and client.previous_secret_expires_at > datetime.now(UTC)
        ):
            previous = client.previous_secret_hash
        # Both comparisons always run, so timing says nothing about which one matched.
        ok_current = hmac.compare_digest(candidate, current)
        ok_previous = hmac.compare_digest(candidate, previous)
        if client is None or not client.is_active or not (ok_current or ok_previous):
            raise invalid_client()
        # Only the registered method: a client_secret_jwt secret must never travel in clear,
        # and a key-only client has no secret. Basic and post carry the same secret, so
        # either is accepted for a client registered with one of them (docs/machine-clients.md).
        if client.auth_method not in SECRET_METHODS or client.secret_hash is None:
            raise invalid_client()
        return client

    def issue(
        self,
        client: ClientCredentials,
        params: Mapping[str, str],
        cnf: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """RFC 6749 §4.4: the token response for an authenticated client."""
        grant_type = params.get("grant_type")
        if not grant_type:
            raise invalid_request("Missing grant_type.")
        if grant_type != GRANT_CLIENT_CREDENTIALS:
            raise OAuthError("unsupported_grant_type", "This grant_type is not supported.")
        permissions = self._scope(client, params.get("scope"))
        audience = self._audience(client, params)
        token, ttl = self.codec.mint(
            client_id=str(client.id),
            audience=audience,
            roles=client.roles,
            permissions=permissions,
            extra={"cnf": dict(cnf)} if cnf is not None else None,
        )
        return {
            "access_token": token,
            "token_type": "Bearer" if cnf is None else "DPoP",
            "expires_in": ttl,
            "scope": " ".join(permissions),
        }

    def _scope(self, client: ClientCredentials, scope: str | None) -> tuple[str, ...]:
        if scope is None or not scope.strip():
            return tuple(sorted(client.permissions))
        requested = scope.split()
        held = set(client.permissions)
        if any(name not in held for name in requested):
            raise OAuthError("invalid_scope", "The requested scope exceeds what the client holds.")
        return tuple(sorted(set(requested)))

    def exchange_audience(self, client: ClientCredentials, params: Mapping[str, str]) -> str:
        """Token exchange: only an audience the client is explicitly allowed (never our own)."""
        target = _target(params)
        if target is None or target not in client.allowed_audiences:
            raise OAuthError("invalid_target", "The requested audience is not allowed.")
        return target

    def _audience(self, client: ClientCredentials, params: Mapping[str, str]) -> str:
        target = _target(params)
        if target is None or target == self.default_audience:
            return self.default_audience
        if target not in client.allowed_audiences:
            raise OAuthError("invalid_target", "The requested resource is not allowed.")
        return target

    async def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662. Anything but a live token of an active client is exactly `active: false`."""
        claims = self.codec.verify(token, audience=None)
        if claims is None or await self._revoked(str(claims["jti"])):
            return {"active": False}
        try:
            client_uuid = uuid.UUID(str(claims["client_id"]))
        except ValueError:
            return {"active": False}
        # The client cache is cleared on every change to clients, here by the commit hook and
        # on other replicas by NOTIFY (and bypassed while that channel is down), so a
        # deactivation shows here as soon as it is committed, without a query per call.
        client = await self.cache.credentials(client_uuid)
        if client is None or not client.is_active:
            return {"active": False}
        token_type = "DPoP" if "cnf" in claims else "Bearer"
        return {"active": True, "token_type": token_type, **claims}

    async def revoke(self, client: ClientCredentials, token: str) -> str | None:
        """RFC 7009. A client may revoke only its own tokens; anything else is a silent no-op.

        The revoked token's `jti`, or None when nothing was revoked."""
        claims = self.codec.verify(token, audience=None)
        if claims is None or claims.get("client_id") != str(client.id):
            return None
        remaining = int(claims["exp"]) - int(time.time())
        if remaining > 0:
            # Durable (PostgreSQL) before it returns; a failure is a 503, never a silent no-op.
            await self.revocations.revoke_token(str(claims["jti"]), ttl=remaining)
        return str(claims["jti"])

    async def _revoked(self, jti: str) -> bool:
        # Fails closed (503) when the store cannot answer: never call a token active unchecked.
        return await self.revocations.token_revoked(jti)


def _target(params: Mapping[str, str]) -> str | None:
    resource = params.get("resource")
    alias = params.get("audience")
    if resource is not None and alias is not None and resource != alias:
        raise invalid_request("resource and audience disagree.")
    return resource if resource is not None else alias
