"""Client authentication, the client-credentials grant, introspection and revocation."""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from auth_service.clients.repository import ClientCredentials, ClientCredentialsReader
from auth_service.clients.secrets import DUMMY_DIGEST, SecretHasher
from auth_service.core.errors import ServiceUnavailable
from auth_service.core.kv import KeyValueStore
from auth_service.oauth2.client_cache import ClientCache
from auth_service.oauth2.errors import OAuthError, invalid_client, invalid_request
from auth_service.oauth2.tokens import TokenCodec

GRANT_CLIENT_CREDENTIALS = "client_credentials"


def revoked_key(jti: str) -> str:
    return f"revoked:jti:{jti}"


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
        kv: KeyValueStore,
        default_audience: str,
    ) -> None:
        self.clients = clients
        self.cache = cache
        self.hasher = hasher
        self.codec = codec
        self.kv = kv
        self.default_audience = default_audience

    async def authenticate(self, auth: ClientAuth) -> ClientCredentials:
        """The client behind these credentials, or `invalid_client` (same for every failure)."""
        client: ClientCredentials | None = None
        try:
            client_uuid = uuid.UUID(auth.client_id)
        except ValueError:
            client_uuid = None
        if client_uuid is not None:
            client = await self.cache.credentials(client_uuid)
        candidate = self.hasher.hash(auth.client_secret)
        current = client.secret_hash if client else DUMMY_DIGEST
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
        return client

    def issue(self, client: ClientCredentials, params: Mapping[str, str]) -> dict[str, Any]:
        """RFC 6749 §4.4: the token response for an authenticated client."""
        grant_type = params.get("grant_type")
        if not grant_type:
            raise invalid_request("Missing grant_type.")
        if grant_type != GRANT_CLIENT_CREDENTIALS:
            raise OAuthError("unsupported_grant_type", "Only client_credentials is supported.")
        permissions = self._scope(client, params.get("scope"))
        audience = self._audience(client, params)
        token, ttl = self.codec.mint(
            client_id=str(client.id),
            audience=audience,
            roles=client.roles,
            permissions=permissions,
        )
        return {
            "access_token": token,
            "token_type": "Bearer",
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

    def _audience(self, client: ClientCredentials, params: Mapping[str, str]) -> str:
        resource = params.get("resource")
        alias = params.get("audience")
        if resource is not None and alias is not None and resource != alias:
            raise invalid_request("resource and audience disagree.")
        target = resource if resource is not None else alias
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
        # Straight from the database, never the cache: deactivation must show here at once.
        if not await self.clients.is_active(client_uuid):
            return {"active": False}
        return {"active": True, "token_type": "Bearer", **claims}

    async def revoke(self, client: ClientCredentials, token: str) -> str | None:
        """RFC 7009. A client may revoke only its own tokens; anything else is a silent no-op.

        The revoked token's `jti`, or None when nothing was revoked."""
        claims = self.codec.verify(token, audience=None)
        if claims is None or claims.get("client_id") != str(client.id):
            return None
        remaining = int(claims["exp"]) - int(time.time())
        if remaining > 0:
            try:
                await self.kv.set(revoked_key(str(claims["jti"])), "1", remaining)
            except Exception as exc:  # the caller must know the revocation did not happen
                raise ServiceUnavailable() from exc
        return str(claims["jti"])

    async def _revoked(self, jti: str) -> bool:
        try:
            return await self.kv.exists(revoked_key(jti))
        except Exception as exc:  # fail closed: never call a token active unchecked
            raise ServiceUnavailable() from exc
