"""Third-party clients against the running app over real HTTP.

- Authlib's httpx OAuth2 client obtains tokens with client_secret_basic and client_secret_post.
- PyJWT's PyJWKClient fetches our JWKS and verifies the token, checking typ, iss and aud.
- `auth_service.verifier` does the same for a resource server, including a key rotation.
"""

from __future__ import annotations

import asyncio
import uuid
import warnings
from typing import Annotated

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from auth_service.clients.service import ClientService
from auth_service.oauth2.keys import KeyEncryptor, rotate_keys
from auth_service.verifier import InvalidToken, TokenVerifier, VerifiedToken, require_permissions
from tests.oauth2.conftest import LiveServer

with warnings.catch_warnings():
    import authlib.deprecate  # noqa: F401  (it installs an "always" filter on import)

    # Authlib nudges plain-httpx users towards httpx2; plain httpx is what we use.
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import AsyncOAuth2Client

# A resource server using the module-level dependency (verifier at app.state.token_verifier).
resource = FastAPI()
OrdersReader = Annotated[VerifiedToken, Depends(require_permissions("clients:read"))]


@resource.get("/orders")
async def orders(token: OrdersReader) -> dict[str, str]:
    return {"client": token.client_id}


async def make_client(
    engine: AsyncEngine,
    server: LiveServer,
    *,
    roles: tuple[str, ...] = ("admin",),
    audiences: tuple[str, ...] = (),
) -> tuple[str, str]:
    # The server runs in another thread and loop: arrange data with the test's own engine.
    async with async_sessionmaker(engine, expire_on_commit=False).begin() as session:
        view, secret = await ClientService(session, server.settings).create(
            name=f"live-{uuid.uuid4().hex[:8]}", role_names=roles, allowed_audiences=audiences
        )
    return str(view.client.id), secret


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_authlib_gets_a_token_that_pyjwkclient_verifies(
    live_server: LiveServer, engine: AsyncEngine, method: str
) -> None:
    client_id, secret = await make_client(engine, live_server, audiences=("orders-api",))
    async with AsyncOAuth2Client(
        client_id, secret, token_endpoint_auth_method=method, timeout=10
    ) as oauth:
        token = await oauth.fetch_token(
            f"{live_server.url}/auth/token",
            grant_type="client_credentials",
            scope="clients:read",
            resource="orders-api",
        )
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "clients:read"
    access_token = token["access_token"]

    jwks_client = jwt.PyJWKClient(f"{live_server.url}/.well-known/jwks.json")
    signing_key = await asyncio.to_thread(jwks_client.get_signing_key_from_jwt, access_token)
    assert jwt.get_unverified_header(access_token)["typ"] == "at+jwt"
    claims = jwt.decode(
        access_token,
        signing_key,
        algorithms=["ES256"],
        issuer=live_server.url,
        audience="orders-api",
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    assert claims["client_id"] == client_id
    assert claims["permissions"] == ["clients:read"]
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(access_token, signing_key, algorithms=["ES256"], audience="billing-api")
    with pytest.raises(jwt.InvalidIssuerError):
        jwt.decode(
            access_token,
            signing_key,
            algorithms=["ES256"],
            audience="orders-api",
            issuer="https://evil.example",
        )


async def test_authlib_sees_invalid_client_for_a_wrong_secret(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    client_id, _ = await make_client(engine, live_server)
    async with AsyncOAuth2Client(client_id, "wrong", timeout=10) as oauth:
        with pytest.raises(Exception, match="invalid_client"):
            await oauth.fetch_token(
                f"{live_server.url}/auth/token", grant_type="client_credentials"
            )


async def test_verifier_dependency_guards_a_resource_server_across_key_rotation(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    url = live_server.url
    verifier = TokenVerifier(
        f"{url}/.well-known/jwks.json", issuer=url, audience="orders-api", min_refetch_seconds=0
    )
    resource.state.token_verifier = verifier

    reader_id, reader_secret = await make_client(engine, live_server, audiences=("orders-api",))
    other_id, other_secret = await make_client(
        engine, live_server, roles=("service",), audiences=("orders-api",)
    )

    async def token_for(client_id: str, secret: str, audience: str = "orders-api") -> str:
        async with httpx.AsyncClient(base_url=url) as http:
            response = await http.post(
                "/auth/token",
                data={"grant_type": "client_credentials", "resource": audience},
                auth=(client_id, secret),
            )
        assert response.status_code == 200, response.text
        value: str = response.json()["access_token"]
        return value

    transport = httpx.ASGITransport(app=resource)
    async with httpx.AsyncClient(transport=transport, base_url="http://resource") as api:

        async def call(token: str | None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return await api.get("/orders", headers=headers)

        good = await token_for(reader_id, reader_secret)
        ok = await call(good)
        assert ok.status_code == 200
        assert ok.json() == {"client": reader_id}

        assert (await call(await token_for(other_id, other_secret))).status_code == 403
        assert (await call(None)).status_code == 401
        assert (await call("garbage")).status_code == 401
        wrong_aud = await token_for(reader_id, reader_secret, audience="auth-service")
        assert (await call(wrong_aud)).status_code == 401

        # Rotate: the server picks the key up within SIGNING_KEYS_REFRESH_SECONDS (1 s here);
        # the verifier has never seen the new kid and must refetch the JWKS.
        encryptor = KeyEncryptor(live_server.settings.signing_key_encryption_key.get_secret_value())
        async with async_sessionmaker(engine).begin() as session:
            new_kid = await rotate_keys(session, encryptor, 900)
        for _ in range(100):
            rotated = await token_for(reader_id, reader_secret)
            if jwt.get_unverified_header(rotated)["kid"] == new_kid:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the running server did not pick up the rotated key")
        assert (await call(rotated)).status_code == 200
        assert (await call(good)).status_code == 200  # old key still published

        with pytest.raises(InvalidToken):
            await verifier.verify(good.rsplit(".", 1)[0] + ".AAAA")


def test_verifier_refuses_symmetric_algorithms() -> None:
    with pytest.raises(ValueError, match="HS256"):
        TokenVerifier("http://x/jwks", issuer="i", audience="a", algorithms=["HS256"])
