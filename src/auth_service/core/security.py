"""Who is calling: a bearer token resolves to an `Identity` through the registered resolvers.

Each domain that issues or trusts tokens registers a `TokenResolver` on `app.state.token_resolvers`
at startup (machine tokens in oauth2/, Supabase user JWTs in users/). Permissions are not taken from
the token: rbac/authorization.py loads them from the database for every decision.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from fastapi import Request

IdentityKind = Literal["client", "user"]


@dataclass(frozen=True, slots=True)
class Identity:
    kind: IdentityKind
    subject: uuid.UUID
    claims: Mapping[str, Any] = field(default_factory=dict)


class TokenResolver(Protocol):
    async def resolve(self, token: str) -> Identity | None:
        """Return the identity for a token this resolver trusts and accepts, else None.

        Must not raise for tokens that are malformed, foreign, expired or revoked.
        """
        ...


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def resolve_identity(request: Request, token: str) -> Identity | None:
    resolvers: list[TokenResolver] = request.app.state.token_resolvers
    for resolver in resolvers:
        identity = await resolver.resolve(token)
        if identity is not None:
            return identity
    return None
