"""Token exchange (RFC 8693): a client calls another service on a signed-in user's behalf.

The subject token is a human user's access token, verified locally by the registered user
token resolvers (Supabase's, or any other identity provider's). The result is one of our
RFC 9068 tokens for the requested audience: `sub` is the user, `roles` and `permissions` are
the user's from our RBAC tables (narrowed by `scope`), and `act.sub` names the client.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_service.clients.repository import ClientCredentials
from auth_service.core.security import Identity, TokenResolver
from auth_service.oauth2.errors import OAuthError, invalid_request
from auth_service.oauth2.tokens import TokenCodec
from auth_service.rbac.repository import AuthorizationRepository
from auth_service.revocation import RevocationStore

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a URN
EXCHANGE_PERMISSION = "tokens:exchange"


def _invalid_grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


class TokenExchange:
    def __init__(
        self,
        resolvers: Sequence[TokenResolver],
        session_factory: async_sessionmaker[AsyncSession],
        codec: TokenCodec,
        revocations: RevocationStore,
    ) -> None:
        # The app's live list: identity providers register their resolvers after we start.
        self.resolvers = resolvers
        self.session_factory = session_factory
        self.codec = codec
        self.revocations = revocations

    async def exchange(
        self,
        client: ClientCredentials,
        params: Mapping[str, str],
        audience: str,
        cnf: Mapping[str, str] | None,
    ) -> dict[str, Any]:
        if EXCHANGE_PERMISSION not in client.permissions:
            raise OAuthError(
                "unauthorized_client", f"The client lacks the {EXCHANGE_PERMISSION} permission."
            )
        subject_token = params.get("subject_token")
        if not subject_token or not params.get("subject_token_type"):
            raise invalid_request("subject_token and subject_token_type are required.")
        if params["subject_token_type"] != ACCESS_TOKEN_TYPE:
            raise invalid_request("Only access tokens can be exchanged.")
        requested_type = params.get("requested_token_type")
        if requested_type is not None and requested_type != ACCESS_TOKEN_TYPE:
            raise invalid_request("Only access tokens can be issued.")
        await self._check_actor(client, params)
        user = await self._user(subject_token)
        async with self.session_factory() as session:
            grants = await AuthorizationRepository(session).grants_for(user)
        if grants is None:
            raise _invalid_grant("The user is not active.")
        roles, held = grants
        permissions = _narrow(held, params.get("scope"))
        expires_in = self.codec.ttl
        subject_exp = user.claims.get("exp")
        if isinstance(subject_exp, int | float):  # never outlive the token it came from
            expires_in = min(expires_in, int(subject_exp) - int(time.time()))
        if expires_in <= 0:
            raise _invalid_grant("The subject token has expired.")
        extra: dict[str, Any] = {"act": {"sub": str(client.id)}}
        if cnf is not None:
            extra["cnf"] = dict(cnf)
        token, ttl = self.codec.mint(
            client_id=str(client.id),
            subject=str(user.subject),
            audience=audience,
            roles=sorted(roles),
            permissions=permissions,
            extra=extra,
            ttl=expires_in,
        )
        return {
            "access_token": token,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "DPoP" if cnf is not None else "Bearer",
            "expires_in": ttl,
            "scope": " ".join(permissions),
        }

    async def _user(self, token: str) -> Identity:
        for resolver in list(self.resolvers):
            identity = await resolver.resolve(token)
            if identity is not None:
                if identity.kind != "user":
                    break  # a machine token is not a user's: nothing to act on behalf of
                return identity
        # Expired, forged, revoked and logged-out tokens all end here.
        raise _invalid_grant("The subject token is not a valid user access token.")

    async def _check_actor(self, client: ClientCredentials, params: Mapping[str, str]) -> None:
        actor, actor_type = params.get("actor_token"), params.get("actor_token_type")
        if actor is None and actor_type is None:
            return
        if not actor or actor_type != ACCESS_TOKEN_TYPE:
            raise invalid_request("actor_token needs actor_token_type access_token.")
        claims = self.codec.verify(actor, audience=None)
        if (
            claims is None
            or claims.get("sub") != str(client.id)
            or "act" in claims
            or await self._revoked(str(claims["jti"]))
        ):
            raise _invalid_grant("The actor token is not a valid token of this client.")

    async def _revoked(self, jti: str) -> bool:
        return await self.revocations.token_revoked(jti)  # fails closed (503)


def _narrow(held: frozenset[str], scope: str | None) -> list[str]:
    if scope is None or not scope.strip():
        return sorted(held)
    requested = set(scope.split())
    if not requested <= held:
        raise OAuthError("invalid_scope", "The requested scope exceeds what the user holds.")
    return sorted(requested)
