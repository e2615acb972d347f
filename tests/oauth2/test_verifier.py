"""auth_service.verifier against the app in process: key caching and rate-limited refetch."""

from __future__ import annotations

import json
import time

import httpx
import jwt
import pytest
from fastapi import FastAPI

from auth_service.config import Settings
from auth_service.verifier import InvalidToken, TokenVerifier
from tests.factories import client_token, create_client


def counting_client(app: FastAPI, calls: list[str]) -> httpx.AsyncClient:
    async def record(request: httpx.Request) -> None:
        calls.append(request.url.path)

    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    return httpx.AsyncClient(
        transport=transport, base_url="http://testserver", event_hooks={"request": [record]}
    )


async def test_keys_are_cached_and_unknown_kids_refetch_at_most_once_per_interval(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    client_id, secret = await create_client(app)
    token = await client_token(client, client_id, secret)
    calls: list[str] = []
    async with counting_client(app, calls) as http:
        verifier = TokenVerifier(
            "http://testserver/.well-known/jwks.json",
            issuer=settings.token_issuer,
            audience=settings.default_audience,
            min_refetch_seconds=60,
            http_client=http,
        )
        for _ in range(3):
            verified = await verifier.verify(token)
        assert verified.client_id == str(client_id)
        assert "clients:read" in verified.permissions
        assert calls == ["/.well-known/jwks.json"]  # fetched once, then cached

        header = jwt.get_unverified_header(token)
        forged_kid = token.replace(
            token.split(".")[0],
            jwt.utils.base64url_encode(
                f'{{"alg":"ES256","typ":"at+jwt","kid":"unknown-{time.time()}"}}'.encode()
            ).decode(),
        )
        for _ in range(5):
            with pytest.raises(InvalidToken, match="unknown key id"):
                await verifier.verify(forged_kid)
        # Within min_refetch_seconds of the last fetch, unknown kids cause no new request.
        assert calls == ["/.well-known/jwks.json"]
        assert header["kid"] in verifier._keys


async def test_verifier_rejects_wrong_issuer_audience_and_typ(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    client_id, secret = await create_client(app)
    token = await client_token(client, client_id, secret)
    calls: list[str] = []
    async with counting_client(app, calls) as http:
        jwks = "http://testserver/.well-known/jwks.json"
        wrong_iss = TokenVerifier(
            jwks, issuer="https://other", audience="auth-service", http_client=http
        )
        wrong_aud = TokenVerifier(
            jwks, issuer=settings.token_issuer, audience="orders-api", http_client=http
        )
        for verifier in (wrong_iss, wrong_aud):
            with pytest.raises(InvalidToken):
                await verifier.verify(token)
        right = TokenVerifier(
            jwks, issuer=settings.token_issuer, audience="auth-service", http_client=http
        )
        assert (await right.verify(token)).subject == str(client_id)
        # Same signature, header claiming a plain JWT: not an access token.
        plain = jwt.utils.base64url_encode(
            json.dumps(
                {**jwt.get_unverified_header(token), "typ": "JWT"}, separators=(",", ":")
            ).encode()
        ).decode()
        with pytest.raises(InvalidToken, match="typ"):
            await right.verify(plain + token[token.index(".") :])


def _b64json(value: dict[str, object]) -> str:
    return jwt.utils.base64url_encode(json.dumps(value, separators=(",", ":")).encode()).decode()


async def test_verifier_rejects_tampered_expired_and_unsigned_tokens(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    from auth_service.oauth2.tokens import TokenCodec

    client_id, secret = await create_client(app)
    token = await client_token(client, client_id, secret)
    calls: list[str] = []
    async with counting_client(app, calls) as http:
        verifier = TokenVerifier(
            "http://testserver/.well-known/jwks.json",
            issuer=settings.token_issuer,
            audience=settings.default_audience,
            http_client=http,
        )
        assert (await verifier.verify(token)).subject == str(client_id)  # now cached

        head, body, sig = token.split(".")
        claims = json.loads(jwt.utils.base64url_decode(body))
        elevated = _b64json({**claims, "permissions": [*claims["permissions"], "god:mode"]})
        for _ in range(2):  # a cached good token never vouches for a different string
            with pytest.raises(InvalidToken, match="signature"):
                await verifier.verify(f"{head}.{elevated}.{sig}")

        unsigned = _b64json({**jwt.get_unverified_header(token), "alg": "none"})
        with pytest.raises(InvalidToken, match="algorithm"):
            await verifier.verify(f"{unsigned}.{body}.")
        for garbage in ("", "a.b", "a.b.c.d", f"{head}.!!!.{sig}", f"{head}.{body}.%%"):
            with pytest.raises(InvalidToken):
                await verifier.verify(garbage)

        expired_codec = TokenCodec(
            app.state.oauth2.keys, issuer=settings.token_issuer, ttl_seconds=-5
        )
        expired, _ = expired_codec.mint(
            client_id=str(client_id), audience=settings.default_audience, roles=(), permissions=()
        )
        with pytest.raises(InvalidToken, match="expired"):
            await verifier.verify(expired)
