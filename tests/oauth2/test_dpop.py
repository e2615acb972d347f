"""DPoP (RFC 9449): proofs built with joserfc (not our code), at the token endpoint and in the
resource-server verifier."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from auth_service.config import Settings
from auth_service.main import create_app
from auth_service.verifier import TokenVerifier, VerifiedToken
from tests.factories import create_client, create_keyed_client

TOKEN_URL = "http://testserver/auth/token"
GRANT = {"grant_type": "client_credentials"}


def proof(
    key: Any,
    *,
    htm: str = "POST",
    htu: str = TOKEN_URL,
    alg: str = "ES256",
    typ: str = "dpop+jwt",
    jwk: dict[str, Any] | None = None,
    iat: float | None = None,
    jti: str | None = None,
    drop: tuple[str, ...] = (),
    **claims: Any,
) -> str:
    header: dict[str, Any] = {
        "typ": typ,
        "alg": alg,
        "jwk": jwk if jwk is not None else key.as_dict(private=False),
    }
    body: dict[str, Any] = {
        "htm": htm,
        "htu": htu,
        "iat": int(iat if iat is not None else time.time()),
        "jti": jti or uuid.uuid4().hex,
        **claims,
    }
    for name in drop:
        del body[name]
    return jose_jwt.encode(header, body, key, algorithms=[alg])


def ath(token: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()


def unverified(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def assert_dpop_error(response: httpx.Response, error: str = "invalid_dpop_proof") -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error
    assert "access_token" not in response.text


async def basic_client(app: FastAPI) -> tuple[str, str]:
    client_id, secret = await create_client(app, roles=("admin",))
    return str(client_id), secret


async def test_a_valid_proof_yields_a_dpop_bound_token(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    key = ECKey.generate_key("P-256")
    auth = await basic_client(app)
    response = await client.post("/auth/token", data=GRANT, auth=auth, headers={"DPoP": proof(key)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "DPoP"
    claims = unverified(body["access_token"])
    assert claims["cnf"] == {"jkt": key.thumbprint()}  # RFC 7638, computed by joserfc

    seen = await client.post(
        "/auth/token/introspect", data={"token": body["access_token"]}, auth=auth
    )
    assert seen.json()["active"] is True
    assert seen.json()["token_type"] == "DPoP"
    assert seen.json()["cnf"] == {"jkt": key.thumbprint()}


async def test_without_proof_the_token_is_a_plain_bearer_token(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await client.post("/auth/token", data=GRANT, auth=await basic_client(app))
    assert response.json()["token_type"] == "Bearer"
    assert "cnf" not in unverified(response.json()["access_token"])


async def test_htu_is_compared_normalised(app: FastAPI, client: httpx.AsyncClient) -> None:
    key = ECKey.generate_key("P-256")
    auth = await basic_client(app)
    for htu in ("HTTP://TestServer:80/auth/token", "http://testserver/auth/token?x=1#f"):
        response = await client.post(
            "/auth/token", data=GRANT, auth=auth, headers={"DPoP": proof(key, htu=htu)}
        )
        assert response.status_code == 200, (htu, response.text)


async def test_rsa_proofs_are_accepted_too(app: FastAPI, client: httpx.AsyncClient) -> None:
    key = RSAKey.generate_key(2048)
    response = await client.post(
        "/auth/token",
        data=GRANT,
        auth=await basic_client(app),
        headers={"DPoP": proof(key, alg="PS256")},
    )
    assert response.status_code == 200, response.text
    assert unverified(response.json()["access_token"])["cnf"]["jkt"] == key.thumbprint()


def _bad_proofs() -> dict[str, Any]:
    key = ECKey.generate_key("P-256")
    other = ECKey.generate_key("P-256")
    now = time.time()
    return {
        "typ_jwt": proof(key, typ="JWT"),
        "alg_hs256": proof(
            OctKey.generate_key(256), alg="HS256", jwk={"kty": "oct", "k": "c2VjcmV0"}
        ),
        "private_jwk": proof(key, jwk=key.as_dict(private=True)),
        "no_jwk": jose_jwt.encode(
            {"typ": "dpop+jwt", "alg": "ES256"},
            {"htm": "POST", "htu": TOKEN_URL, "iat": int(now), "jti": "x"},
            key,
        ),
        "other_key_signed": proof(key, jwk=other.as_dict(private=False)),
        "htm_get": proof(key, htm="GET"),
        "htu_other": proof(key, htu="http://testserver/auth/token/introspect"),
        "htu_other_host": proof(key, htu="https://testserver/auth/token"),
        "iat_old": proof(key, iat=now - 600),
        "iat_future": proof(key, iat=now + 600),
        "no_jti": proof(key, drop=("jti",)),
        "no_htu": proof(key, drop=("htu",)),
        "garbage": "a.b.c",
    }


@pytest.mark.parametrize("case", sorted(_bad_proofs()))
async def test_every_proof_check_refuses(
    app: FastAPI, client: httpx.AsyncClient, case: str
) -> None:
    bad = _bad_proofs()[case]
    response = await client.post(
        "/auth/token", data=GRANT, auth=await basic_client(app), headers={"DPoP": bad}
    )
    assert_dpop_error(response)


async def test_a_replayed_proof_is_refused(app: FastAPI, client: httpx.AsyncClient) -> None:
    key = ECKey.generate_key("P-256")
    auth = await basic_client(app)
    once = proof(key)
    first = await client.post("/auth/token", data=GRANT, auth=auth, headers={"DPoP": once})
    assert first.status_code == 200
    again = await client.post("/auth/token", data=GRANT, auth=auth, headers={"DPoP": once})
    assert_dpop_error(again)


async def test_two_proof_headers_are_refused(app: FastAPI, client: httpx.AsyncClient) -> None:
    key = ECKey.generate_key("P-256")
    headers = [("DPoP", proof(key)), ("DPoP", proof(key))]
    response = await client.post(
        "/auth/token", data=GRANT, auth=await basic_client(app), headers=headers
    )
    assert_dpop_error(response)


async def test_a_dpop_bound_client_must_send_a_proof(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    client_id, secret = await create_keyed_client(app, dpop=True)
    assert secret is not None
    auth = (str(client_id), secret)
    assert_dpop_error(await client.post("/auth/token", data=GRANT, auth=auth))
    key = ECKey.generate_key("P-256")
    ok = await client.post("/auth/token", data=GRANT, auth=auth, headers={"DPoP": proof(key)})
    assert ok.status_code == 200
    assert ok.json()["token_type"] == "DPoP"


@pytest.fixture
async def nonce_app(settings: Settings, clean_db: None) -> AsyncIterator[FastAPI]:
    application = create_app(settings.model_copy(update={"dpop_nonce_required": True}))
    async with application.router.lifespan_context(application):
        yield application


async def test_server_nonce_when_required(nonce_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=nonce_app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        key = ECKey.generate_key("P-256")
        auth = await basic_client(nonce_app)
        first = await client.post(
            "/auth/token", data=GRANT, auth=auth, headers={"DPoP": proof(key)}
        )
        assert_dpop_error(first, "use_dpop_nonce")
        nonce = first.headers["dpop-nonce"]
        wrong = proof(key, nonce="not-our-nonce")
        assert_dpop_error(
            await client.post("/auth/token", data=GRANT, auth=auth, headers={"DPoP": wrong}),
            "use_dpop_nonce",
        )
        retry = await client.post(
            "/auth/token", data=GRANT, auth=auth, headers={"DPoP": proof(key, nonce=nonce)}
        )
        assert retry.status_code == 200, retry.text
        assert retry.headers["dpop-nonce"]


async def test_our_admin_api_refuses_a_dpop_bound_token_as_bearer(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    key = ECKey.generate_key("P-256")
    issued = await client.post(
        "/auth/token", data=GRANT, auth=await basic_client(app), headers={"DPoP": proof(key)}
    )
    bearer = {"Authorization": f"Bearer {issued.json()['access_token']}"}
    assert (await client.get("/auth/admin/clients", headers=bearer)).status_code == 401


# --- the resource-server side: auth_service.verifier -----------------------------------------

RESOURCE_URL = "http://orders.test/orders"


@pytest.fixture
async def resource(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    verifier = TokenVerifier(
        "http://testserver/.well-known/jwks.json",
        issuer=settings.token_issuer,
        audience=settings.default_audience,
        http_client=client,
    )
    api = FastAPI()
    reader = Depends(verifier.require_permissions("clients:read"))

    @api.get("/orders")
    async def orders(token: VerifiedToken = reader) -> dict[str, Any]:
        return {"client": token.client_id, "jkt": token.jkt}

    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://orders.test") as rs:
        yield rs


async def _bound_token(app: FastAPI, client: httpx.AsyncClient, key: ECKey) -> str:
    issued = await client.post(
        "/auth/token", data=GRANT, auth=await basic_client(app), headers={"DPoP": proof(key)}
    )
    token: str = issued.json()["access_token"]
    return token


async def test_verifier_accepts_the_right_token_and_proof(
    app: FastAPI, client: httpx.AsyncClient, resource: httpx.AsyncClient
) -> None:
    key = ECKey.generate_key("P-256")
    token = await _bound_token(app, client, key)
    headers = {
        "Authorization": f"DPoP {token}",
        "DPoP": proof(key, htm="GET", htu=RESOURCE_URL, ath=ath(token)),
    }
    response = await resource.get("/orders", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["jkt"] == key.thumbprint()

    replayed = await resource.get("/orders", headers=headers)
    assert replayed.status_code == 401
    assert 'error="invalid_dpop_proof"' in replayed.headers["www-authenticate"]


@pytest.mark.parametrize("case", ["wrong_ath", "other_key", "no_ath", "wrong_htu", "no_proof"])
async def test_verifier_refuses_bad_proofs(
    app: FastAPI, client: httpx.AsyncClient, resource: httpx.AsyncClient, case: str
) -> None:
    key = ECKey.generate_key("P-256")
    token = await _bound_token(app, client, key)
    headers = {"Authorization": f"DPoP {token}"}
    match case:
        case "wrong_ath":
            headers["DPoP"] = proof(key, htm="GET", htu=RESOURCE_URL, ath=ath(token + "x"))
        case "other_key":
            other = ECKey.generate_key("P-256")
            headers["DPoP"] = proof(other, htm="GET", htu=RESOURCE_URL, ath=ath(token))
        case "no_ath":
            headers["DPoP"] = proof(key, htm="GET", htu=RESOURCE_URL)
        case "wrong_htu":
            headers["DPoP"] = proof(key, htm="GET", htu="http://orders.test/other", ath=ath(token))
        case _:
            pass
    response = await resource.get("/orders", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("DPoP error=")


async def test_verifier_refuses_a_bound_token_as_bearer_and_a_bearer_token_as_dpop(
    app: FastAPI, client: httpx.AsyncClient, resource: httpx.AsyncClient
) -> None:
    key = ECKey.generate_key("P-256")
    token = await _bound_token(app, client, key)
    as_bearer = await resource.get("/orders", headers={"Authorization": f"Bearer {token}"})
    assert as_bearer.status_code == 401
    assert as_bearer.headers["www-authenticate"] == 'Bearer error="invalid_token"'

    plain = await client.post("/auth/token", data=GRANT, auth=await basic_client(app))
    plain_token = plain.json()["access_token"]
    as_dpop = await resource.get(
        "/orders",
        headers={
            "Authorization": f"DPoP {plain_token}",
            "DPoP": proof(key, htm="GET", htu=RESOURCE_URL, ath=ath(plain_token)),
        },
    )
    assert as_dpop.status_code == 401
    # And the plain token still works as what it is.
    ok = await resource.get("/orders", headers={"Authorization": f"Bearer {plain_token}"})
    assert ok.status_code == 200
