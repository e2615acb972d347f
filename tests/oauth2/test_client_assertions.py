"""Client authentication by JWT assertion: private_key_jwt and client_secret_jwt (RFC 7523).

Good assertions come from Authlib's client auth classes; the broken ones from PyJWT. Every
failure must be the same 401 invalid_client.
"""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from joserfc.jwk import ECKey
from jwt.algorithms import ECAlgorithm
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.clients.models import AppClient
from auth_service.main import create_app
from tests.conftest import make_settings
from tests.factories import create_client, create_keyed_client
from tests.support.live import free_port, serve_in_thread

with warnings.catch_warnings():
    import authlib.deprecate  # noqa: F401  (it installs an "always" filter on import)

    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import AsyncOAuth2Client
    from authlib.oauth2.rfc7523 import ClientSecretJWT, PrivateKeyJWT

TOKEN_URL = "http://testserver/auth/token"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
GRANT = {"grant_type": "client_credentials"}


def ec_key(kid: str | None = "k1") -> tuple[ec.EllipticCurvePrivateKey, dict[str, Any]]:
    private = ec.generate_private_key(ec.SECP256R1())
    public: dict[str, Any] = dict(ECAlgorithm.to_jwk(private.public_key(), as_dict=True))
    if kid is not None:
        public["kid"] = kid
    return private, public


def pem(private: ec.EllipticCurvePrivateKey) -> bytes:
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_assertion(
    key: Any,
    client_id: object,
    *,
    aud: Any = TOKEN_URL,
    alg: str = "ES256",
    kid: str | None = "k1",
    exp_in: int = 60,
    jti: str | None = None,
    drop: tuple[str, ...] = (),
    **overrides: Any,
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": str(client_id),
        "sub": str(client_id),
        "aud": aud,
        "iat": now,
        "exp": now + exp_in,
        "jti": jti or uuid.uuid4().hex,
    }
    for name in drop:
        del claims[name]
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def assertion_body(assertion: str, **extra: str) -> dict[str, str]:
    return {**GRANT, "client_assertion_type": JWT_BEARER, "client_assertion": assertion, **extra}


def assert_invalid_client(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "Client authentication failed.",
    }


@pytest.fixture
async def keyed(app: FastAPI) -> tuple[uuid.UUID, ec.EllipticCurvePrivateKey]:
    """A private_key_jwt client with one inline ES256 key (kid k1)."""
    private, public = ec_key()
    client_id, secret = await create_keyed_client(
        app, method="private_key_jwt", jwks={"keys": [public]}
    )
    assert secret is None
    return client_id, private


def authlib_client(app: FastAPI, client_id: object, secret: Any, method: str) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        str(client_id),
        secret,
        token_endpoint_auth_method=method,
        transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 50000)),
    )


async def test_authlib_private_key_jwt_gets_tokens(
    app: FastAPI, keyed: tuple[uuid.UUID, ec.EllipticCurvePrivateKey]
) -> None:
    client_id, private = keyed
    async with authlib_client(
        app, client_id, ECKey.import_key(pem(private)), "private_key_jwt"
    ) as oauth:
        oauth.register_client_auth_method(PrivateKeyJWT(TOKEN_URL, alg="ES256"))
        first = await oauth.fetch_token(TOKEN_URL, grant_type="client_credentials")
        second = await oauth.fetch_token(TOKEN_URL, grant_type="client_credentials")  # new jti
    assert first["token_type"] == "Bearer"
    claims = jwt.decode(first["access_token"], options={"verify_signature": False})
    assert claims["sub"] == claims["client_id"] == str(client_id)
    assert second["access_token"] != first["access_token"]


async def test_authlib_client_secret_jwt_gets_a_token(app: FastAPI, db: AsyncSession) -> None:
    client_id, secret = await create_keyed_client(app, method="client_secret_jwt")
    assert secret is not None
    row = (await db.scalars(select(AppClient).where(AppClient.id == client_id))).one()
    assert row.client_secret_encrypted is not None
    assert secret not in row.client_secret_encrypted  # encrypted at rest, never in clear
    async with authlib_client(app, client_id, secret, "client_secret_jwt") as oauth:
        oauth.register_client_auth_method(ClientSecretJWT(TOKEN_URL))
        token = await oauth.fetch_token(TOKEN_URL, grant_type="client_credentials")
    assert jwt.decode(token["access_token"], options={"verify_signature": False})["sub"] == str(
        client_id
    )


async def test_client_secret_jwt_client_cannot_send_its_secret_in_clear(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    client_id, secret = await create_keyed_client(app, method="client_secret_jwt")
    assert secret is not None
    response = await client.post("/auth/token", data=GRANT, auth=(str(client_id), secret))
    assert_invalid_client(response)
    response = await client.post(
        "/auth/token", data={**GRANT, "client_id": str(client_id), "client_secret": secret}
    )
    assert_invalid_client(response)


async def test_client_secret_jwt_after_rotation_accepts_both_during_grace(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    client_id, old = await create_keyed_client(app, method="client_secret_jwt")
    assert old is not None
    from auth_service.clients.service import ClientService

    async with app.state.session_factory.begin() as session:
        new, _ = await ClientService(session, app.state.settings).rotate_secret(client_id)
    for secret in (old, new):
        signed = make_assertion(secret.encode(), client_id, alg="HS256", kid=None)
        response = await client.post("/auth/token", data=assertion_body(signed))
        assert response.status_code == 200, response.text


async def test_key_only_client_has_no_secret_and_refuses_basic(
    app: FastAPI, client: httpx.AsyncClient, db: AsyncSession, keyed: tuple[uuid.UUID, Any]
) -> None:
    client_id, _ = keyed
    row = (await db.scalars(select(AppClient).where(AppClient.id == client_id))).one()
    assert row.client_secret_hash is None
    assert row.client_secret_encrypted is None
    response = await client.post("/auth/token", data=GRANT, auth=(str(client_id), ""))
    assert_invalid_client(response)


async def test_secret_client_cannot_use_an_assertion(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    client_id, secret = await create_client(app)
    hmac_signed = make_assertion(secret.encode(), client_id, alg="HS256", kid=None)
    assert_invalid_client(await client.post("/auth/token", data=assertion_body(hmac_signed)))


async def test_assertion_and_a_secret_together_are_invalid_request(
    client: httpx.AsyncClient, keyed: tuple[uuid.UUID, Any]
) -> None:
    client_id, private = keyed
    body = assertion_body(make_assertion(private, client_id), client_secret="x")
    response = await client.post("/auth/token", data=body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_issuer_is_an_accepted_audience_and_client_id_may_be_repeated(
    client: httpx.AsyncClient, keyed: tuple[uuid.UUID, Any]
) -> None:
    client_id, private = keyed
    signed = make_assertion(private, client_id, aud=["https://other", "http://testserver"])
    response = await client.post(
        "/auth/token", data=assertion_body(signed, client_id=str(client_id))
    )
    assert response.status_code == 200, response.text


async def test_replayed_jti_is_refused(
    client: httpx.AsyncClient, keyed: tuple[uuid.UUID, Any]
) -> None:
    client_id, private = keyed
    signed = make_assertion(private, client_id)
    assert (await client.post("/auth/token", data=assertion_body(signed))).status_code == 200
    assert_invalid_client(await client.post("/auth/token", data=assertion_body(signed)))
    # The same jti in a freshly signed assertion is a replay too.
    jti = jwt.decode(signed, options={"verify_signature": False})["jti"]
    again = make_assertion(private, client_id, jti=jti)
    assert_invalid_client(await client.post("/auth/token", data=assertion_body(again)))


def _other_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    "case",
    [
        "wrong_aud",
        "expired",
        "exp_beyond_max_lifetime",
        "no_exp",
        "no_jti",
        "iat_in_future",
        "nbf_in_future",
        "iss_not_sub",
        "client_id_param_differs",
        "unregistered_key",
        "unknown_kid",
        "alg_hs256_with_public_key",
        "alg_rs256_on_ec_key",
        "alg_none",
        "unknown_client",
        "garbage",
    ],
)
async def test_bad_assertions_are_invalid_client(
    client: httpx.AsyncClient, keyed: tuple[uuid.UUID, ec.EllipticCurvePrivateKey], case: str
) -> None:
    client_id, private = keyed
    now = int(time.time())
    extra: dict[str, str] = {}
    signed: str
    match case:
        case "wrong_aud":
            signed = make_assertion(private, client_id, aud="https://elsewhere/token")
        case "expired":
            signed = make_assertion(private, client_id, exp_in=-120, iat=now - 180)
        case "exp_beyond_max_lifetime":
            signed = make_assertion(private, client_id, exp_in=3 * 3600, iat=None)
        case "no_exp":
            signed = make_assertion(private, client_id, exp=None)
        case "no_jti":
            signed = make_assertion(private, client_id, drop=("jti",))
        case "iat_in_future":
            signed = make_assertion(private, client_id, iat=now + 600, exp_in=900)
        case "nbf_in_future":
            signed = make_assertion(private, client_id, nbf=now + 600)
        case "iss_not_sub":
            signed = make_assertion(private, client_id, sub=str(uuid.uuid4()))
        case "client_id_param_differs":
            signed = make_assertion(private, client_id)
            extra = {"client_id": str(uuid.uuid4())}
        case "unregistered_key":
            signed = make_assertion(_other_key(), client_id)
        case "unknown_kid":
            signed = make_assertion(private, client_id, kid="k2")
        case "alg_hs256_with_public_key":
            signed = make_assertion(b"x" * 32, client_id, alg="HS256")
        case "alg_rs256_on_ec_key":
            signed = make_assertion(_RSA, client_id, alg="RS256")
        case "alg_none":
            signed = make_assertion(None, client_id, alg="none")
        case "unknown_client":
            other = uuid.uuid4()
            signed = make_assertion(private, other)
        case _:
            signed = "not.a.jwt"
    response = await client.post("/auth/token", data=assertion_body(signed, **extra))
    assert_invalid_client(response)


async def test_wrong_assertion_type_is_invalid_client(
    client: httpx.AsyncClient, keyed: tuple[uuid.UUID, Any]
) -> None:
    client_id, private = keyed
    body = assertion_body(make_assertion(private, client_id))
    body["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"
    assert_invalid_client(await client.post("/auth/token", data=body))


async def test_introspection_and_revocation_accept_assertions(
    client: httpx.AsyncClient, keyed: tuple[uuid.UUID, Any]
) -> None:
    client_id, private = keyed
    issued = await client.post(
        "/auth/token", data=assertion_body(make_assertion(private, client_id))
    )
    token = issued.json()["access_token"]
    auth = {
        "client_assertion_type": JWT_BEARER,
        "client_assertion": make_assertion(private, client_id, aud=f"{TOKEN_URL}/introspect"),
    }
    seen = await client.post("/auth/token/introspect", data={"token": token, **auth})
    assert seen.status_code == 200
    assert seen.json()["active"] is True
    auth["client_assertion"] = make_assertion(private, client_id)
    revoked = await client.post("/auth/token/revoke", data={"token": token, **auth})
    assert revoked.status_code == 200
    auth["client_assertion"] = make_assertion(private, client_id)
    after = await client.post("/auth/token/introspect", data={"token": token, **auth})
    assert after.json() == {"active": False}
    # A replayed assertion at introspection is refused like anywhere else.
    assert_invalid_client(
        await client.post("/auth/token/introspect", data={"token": token, **auth})
    )


class JwksHost:
    """A client's JWKS endpoint over real HTTP, whose keys the test can rotate."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        self.app = FastAPI()

        @self.app.get("/jwks.json")
        async def jwks() -> dict[str, Any]:
            self.fetches += 1
            return {"keys": self.keys}


@pytest.fixture
def jwks_host() -> Iterator[tuple[JwksHost, str]]:
    host = JwksHost()
    with serve_in_thread(host.app, free_port(), name="client-jwks") as url:
        yield host, f"{url}/jwks.json"


@pytest.fixture
async def fast_refetch_app(settings: Any, clean_db: None) -> AsyncIterator[FastAPI]:
    tuned = settings.model_copy(update={"client_jwks_min_refetch_seconds": 0.0})
    application = create_app(tuned)
    async with application.router.lifespan_context(application):
        yield application


async def test_jwks_uri_is_fetched_cached_and_refetched_on_unknown_kid(
    fast_refetch_app: FastAPI, jwks_host: tuple[JwksHost, str]
) -> None:
    host, uri = jwks_host
    first, first_public = ec_key("k1")
    host.keys = [first_public]
    app = fast_refetch_app
    client_id, _ = await create_keyed_client(app, method="private_key_jwt", jwks_uri=uri)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for _ in range(2):
            signed = make_assertion(first, client_id)
            assert (
                await client.post("/auth/token", data=assertion_body(signed))
            ).status_code == 200
        assert host.fetches == 1  # cached

        second, second_public = ec_key("k2")
        host.keys = [first_public, second_public]  # the client rotates in a new key
        signed = make_assertion(second, client_id, kid="k2")
        assert (await client.post("/auth/token", data=assertion_body(signed))).status_code == 200
        assert host.fetches == 2

        signed = make_assertion(_other_key(), client_id, kid="k3")
        assert_invalid_client(await client.post("/auth/token", data=assertion_body(signed)))


async def test_replay_store_down_fails_closed_with_503(database_url: str, clean_db: None) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = make_settings(auth_service_database_url=database_url, redis_url=dead)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        private, public = ec_key()
        client_id, _ = await create_keyed_client(
            app, method="private_key_jwt", jwks={"keys": [public]}
        )
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            signed = make_assertion(private, client_id)
            response = await client.post("/auth/token", data=assertion_body(signed))
    assert response.status_code == 503, response.text
    assert "access_token" not in response.text


async def test_admin_api_registers_key_only_clients(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    from tests.factories import admin_headers

    headers = await admin_headers(app, client)
    _, public = ec_key()
    created = await client.post(
        "/auth/admin/clients",
        headers=headers,
        json={
            "name": "keyed",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [public]},
            "dpop_bound_access_tokens": True,
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["client_secret"] is None
    assert body["token_endpoint_auth_method"] == "private_key_jwt"
    assert body["jwks"] == {"keys": [public]}
    assert body["dpop_bound_access_tokens"] is True
    rotated = await client.post(f"/auth/admin/clients/{body['client_id']}/secret", headers=headers)
    assert rotated.status_code == 409
    assert rotated.json()["error"] == "client_has_no_secret"

    # Key rotation: replace the key set.
    _, newer = ec_key("k2")
    replaced = await client.put(
        f"/auth/admin/clients/{body['client_id']}/keys",
        headers=headers,
        json={"jwks": {"keys": [newer]}},
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["jwks"] == {"keys": [newer]}
    assert replaced.json()["dpop_bound_access_tokens"] is True  # omitted: unchanged
    # Neither jwks nor jwks_uri: the keys stay, only the DPoP flag changes.
    flag_only = await client.put(
        f"/auth/admin/clients/{body['client_id']}/keys",
        headers=headers,
        json={"dpop_bound_access_tokens": False},
    )
    assert flag_only.status_code == 200, flag_only.text
    assert flag_only.json()["jwks"] == {"keys": [newer]}
    assert flag_only.json()["dpop_bound_access_tokens"] is False


async def test_a_secret_client_takes_no_keys(app: FastAPI, client: httpx.AsyncClient) -> None:
    from tests.factories import admin_headers

    headers = await admin_headers(app, client)
    created = await client.post("/auth/admin/clients", headers=headers, json={"name": "secret"})
    assert created.status_code == 201, created.text
    url = f"/auth/admin/clients/{created.json()['client_id']}/keys"
    _, public = ec_key()
    refused = await client.put(url, headers=headers, json={"jwks": {"keys": [public]}})
    assert refused.status_code == 409
    assert refused.json()["error"] == "client_has_no_keys"
    flag = await client.put(url, headers=headers, json={"dpop_bound_access_tokens": True})
    assert flag.status_code == 200, flag.text
    assert flag.json()["jwks"] is None
    assert flag.json()["dpop_bound_access_tokens"] is True


@pytest.mark.parametrize(
    "payload",
    [
        {"token_endpoint_auth_method": "private_key_jwt"},  # no keys at all
        {"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": []}},
        {"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "ftp://x/jwks"},
        {"token_endpoint_auth_method": "client_secret_basic", "jwks_uri": "https://x/jwks"},
        {
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [{"kty": "oct", "k": "AA"}]},
        },
    ],
)
async def test_admin_api_refuses_bad_key_registrations(
    app: FastAPI, client: httpx.AsyncClient, payload: dict[str, Any]
) -> None:
    from tests.factories import admin_headers

    headers = await admin_headers(app, client)
    response = await client.post(
        "/auth/admin/clients", headers=headers, json={"name": "bad", **payload}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_client_keys"


async def test_admin_api_refuses_a_private_key(app: FastAPI, client: httpx.AsyncClient) -> None:
    from tests.factories import admin_headers

    headers = await admin_headers(app, client)
    private = ec.generate_private_key(ec.SECP256R1())
    leaked: dict[str, Any] = dict(ECAlgorithm.to_jwk(private, as_dict=True))
    assert "d" in leaked
    response = await client.post(
        "/auth/admin/clients",
        headers=headers,
        json={
            "name": "leaky",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [leaked]},
        },
    )
    assert response.status_code == 422
    assert "private" in response.json()["message"]


def test_jwks_uri_must_be_https_in_production() -> None:
    from auth_service.clients.keys import validate_jwks_uri
    from auth_service.core.errors import ValidationFailed

    assert validate_jwks_uri("http://keys.internal/jwks", production=False)
    with pytest.raises(ValidationFailed):
        validate_jwks_uri("http://keys.internal/jwks", production=True)
    assert validate_jwks_uri("https://keys.example/jwks", production=True)
