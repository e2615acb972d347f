"""The shared factories work end to end: client -> token -> admin permission check."""

from __future__ import annotations

import httpx
import jwt
from fastapi import FastAPI

from tests.factories import admin_headers, client_token, create_client


async def test_factory_client_gets_a_token_with_its_permissions(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    client_id, secret = await create_client(app, roles=("admin",))
    token = await client_token(client, client_id, secret)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == str(client_id)
    assert "admin" in claims["roles"]
    assert "clients:write" in claims["permissions"]


async def test_admin_headers_resolve_to_a_client_principal(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    headers = await admin_headers(app, client)
    resolver = app.state.token_resolvers[0]
    identity = await resolver.resolve(headers["Authorization"].removeprefix("Bearer "))
    assert identity is not None
    assert identity.kind == "client"


async def test_resolver_returns_none_for_garbage(app: FastAPI) -> None:
    for token in ("", "abc", "a.b.c", "eyJhbGciOiJub25lIn0.e30."):
        for resolver in app.state.token_resolvers:
            assert await resolver.resolve(token) is None
