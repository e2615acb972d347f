"""POST /auth/token: client_credentials per RFC 6749 §4.4, tokens per RFC 9068."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote_plus

import httpx
import jwt
import pytest
from fastapi import FastAPI

from auth_service.config import Settings
from auth_service.main import create_app
from tests.conftest import make_settings
from tests.factories import create_client

GRANT = {"grant_type": "client_credentials"}


def basic(client_id: object, secret: str) -> dict[str, str]:
    raw = f"{quote_plus(str(client_id))}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    return body


async def test_basic_auth_form_body_issues_rfc9068_token(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    client_id, secret = await create_client(app, roles=("admin",))
    before = int(time.time())
    response = await client.post("/auth/token", data=GRANT, headers=basic(client_id, secret))

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == settings.access_token_ttl_seconds

    header = jwt.get_unverified_header(body["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    assert header["kid"] == app.state.oauth2.keys.ring.signing_kid
    claims = claims_of(body["access_token"])
    assert claims["iss"] == settings.token_issuer
    assert claims["sub"] == claims["client_id"] == str(client_id)
    assert claims["aud"] == settings.default_audience
    assert before <= claims["iat"] <= claims["exp"] - settings.access_token_ttl_seconds + 1
    assert len(claims["jti"]) >= 32
    assert claims["roles"] == ["admin"]
    assert "clients:write" in claims["permissions"]
    assert claims["scope"] == " ".join(claims["permissions"]) == body["scope"]


async def test_client_secret_post_and_json_body_are_accepted(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    client_id, secret = await create_client(app)
    creds = {"client_id": str(client_id), "client_secret": secret}
    form = await client.post("/auth/token", data={**GRANT, **creds})
    as_json = await client.post("/auth/token", json={**GRANT, **creds})
    json_basic = await client.post("/auth/token", json=GRANT, headers=basic(client_id, secret))
    for response in (form, as_json, json_basic):
        assert response.status_code == 200, response.text
        assert claims_of(response.json()["access_token"])["sub"] == str(client_id)


async def test_each_token_has_a_fresh_jti(app: FastAPI, client: httpx.AsyncClient) -> None:
    client_id, secret = await create_client(app)
    jtis = set()
    for _ in range(3):
        response = await client.post("/auth/token", data=GRANT, headers=basic(client_id, secret))
        jtis.add(claims_of(response.json()["access_token"])["jti"])
    assert len(jtis) == 3


async def test_basic_credentials_are_form_url_decoded(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    secret = "s3cr+t%20with:colon=and%plus+" + "x" * 20
    client_id, _ = await create_client(app, secret=secret)

    ok = await client.post("/auth/token", data=GRANT, headers=basic(client_id, secret))
    assert ok.status_code == 200, ok.text

    # The same secret without form-encoding decodes differently ('+' -> ' '), so it fails.
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    wrong = await client.post("/auth/token", data=GRANT, headers={"Authorization": f"Basic {raw}"})
    assert_oauth_error(wrong, 401, "invalid_client")


async def test_generated_secrets_work_in_basic_without_form_encoding(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    client_id, secret = await create_client(app)
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    response = await client.post(
        "/auth/token", data=GRANT, headers={"Authorization": f"Basic {raw}"}
    )
    assert response.status_code == 200, response.text


async def test_unknown_client_wrong_secret_and_inactive_client_answer_identically(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    client_id, secret = await create_client(app)
    inactive_id, inactive_secret = await create_client(app, is_active=False)
    attempts = [
        basic("6a3c0d2e-0000-4000-8000-000000000000", secret),
        basic("not-a-uuid", secret),
        basic(client_id, secret + "x"),
        basic(inactive_id, inactive_secret),
    ]
    bodies = []
    for headers in attempts:
        response = await client.post("/auth/token", data=GRANT, headers=headers)
        bodies.append(assert_oauth_error(response, 401, "invalid_client"))
        assert response.headers["www-authenticate"] == 'Basic realm="auth_service"'
    assert all(body == bodies[0] for body in bodies)

    post = await client.post(
        "/auth/token",
        data={**GRANT, "client_id": str(client_id), "client_secret": "wrong"},
    )
    assert assert_oauth_error(post, 401, "invalid_client") == bodies[0]


async def test_missing_credentials_is_invalid_client(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/token", data=GRANT)
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    "authorization",
    ["Basic !!!notbase64", "Basic " + base64.b64encode(b"no-colon").decode(), "Basic "],
)
async def test_malformed_basic_header_is_invalid_client(
    client: httpx.AsyncClient, authorization: str
) -> None:
    response = await client.post(
        "/auth/token", data=GRANT, headers={"Authorization": authorization}
    )
    assert_oauth_error(response, 401, "invalid_client")


async def test_missing_grant_type_is_invalid_request(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    client_id, secret = await create_client(app)
    response = await client.post("/auth/token", data={}, headers=basic(client_id, secret))
    assert_oauth_error(response, 400, "invalid_request")


@pytest.mark.parametrize("grant_type", ["password", "authorization_code", "refresh_token"])
async def test_other_grant_types_are_unsupported(
    app: FastAPI, client: httpx.AsyncClient, grant_type: str
) -> None:
    client_id, secret = await create_client(app)
    response = await client.post(
        "/auth/token", data={"grant_type": grant_type}, headers=basic(client_id, secret)
    )
    assert_oauth_error(response, 400, "unsupported_grant_type")


async def test_two_authentication_methods_at_once_is_invalid_request(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    client_id, secret = await create_client(app)
    response = await client.post(
        "/auth/token",
        data={**GRANT, "client_id": str(client_id), "client_secret": secret},
        headers=basic(client_id, secret),
    )
    assert_oauth_error(response, 400, "invalid_request")


async def test_repeated_parameter_is_invalid_request(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    client_id, secret = await create_client(app)
    response = await client.post(
        "/auth/token",
        content=b"grant_type=client_credentials&grant_type=client_credentials",
        headers={**basic(client_id, secret), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_oauth_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"grant_type=client_credentials", "text/plain"),
        (b"{not json", "application/json"),
        (b'["grant_type"]', "application/json"),
        (b'{"grant_type": 1}', "application/json"),
        (b"", ""),
    ],
)
async def test_unparseable_bodies_are_invalid_request(
    app: FastAPI, client: httpx.AsyncClient, content: bytes, content_type: str
) -> None:
    client_id, secret = await create_client(app)
    headers = basic(client_id, secret)
    if content_type:
        headers["Content-Type"] = content_type
    response = await client.post("/auth/token", content=content, headers=headers)
    assert_oauth_error(response, 400, "invalid_request")


async def test_scope_narrows_the_permissions_claim(app: FastAPI, client: httpx.AsyncClient) -> None:
    client_id, secret = await create_client(app, roles=("admin",))
    response = await client.post(
        "/auth/token",
        data={**GRANT, "scope": "clients:read roles:read"},
        headers=basic(client_id, secret),
    )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "clients:read roles:read"
    claims = claims_of(response.json()["access_token"])
    assert claims["permissions"] == ["clients:read", "roles:read"]
    assert claims["scope"] == "clients:read roles:read"
    assert claims["roles"] == ["admin"]


@pytest.mark.parametrize("scope", ["orders:read", "clients:read orders:read", "admin"])
async def test_scope_beyond_the_clients_permissions_is_invalid_scope(
    app: FastAPI, client: httpx.AsyncClient, scope: str
) -> None:
    client_id, secret = await create_client(app, roles=("admin",))
    response = await client.post(
        "/auth/token", data={**GRANT, "scope": scope}, headers=basic(client_id, secret)
    )
    assert_oauth_error(response, 400, "invalid_scope")


async def test_client_without_permissions_cannot_ask_for_any_scope(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    client_id, secret = await create_client(app, roles=())
    ok = await client.post("/auth/token", data=GRANT, headers=basic(client_id, secret))
    assert ok.status_code == 200
    assert claims_of(ok.json()["access_token"])["permissions"] == []
    bad = await client.post(
        "/auth/token", data={**GRANT, "scope": "clients:read"}, headers=basic(client_id, secret)
    )
    assert_oauth_error(bad, 400, "invalid_scope")


@pytest.mark.parametrize("param", ["resource", "audience"])
async def test_resource_or_audience_sets_aud_when_allowed(
    app: FastAPI, client: httpx.AsyncClient, param: str
) -> None:
    client_id, secret = await create_client(app, audiences=["https://orders.example"])
    response = await client.post(
        "/auth/token",
        data={**GRANT, param: "https://orders.example"},
        headers=basic(client_id, secret),
    )
    assert response.status_code == 200, response.text
    assert claims_of(response.json()["access_token"])["aud"] == "https://orders.example"


@pytest.mark.parametrize("param", ["resource", "audience"])
async def test_resource_not_allowed_for_the_client_is_invalid_target(
    app: FastAPI, client: httpx.AsyncClient, param: str
) -> None:
    client_id, secret = await create_client(app, audiences=["https://orders.example"])
    response = await client.post(
        "/auth/token",
        data={**GRANT, param: "https://billing.example"},
        headers=basic(client_id, secret),
    )
    assert_oauth_error(response, 400, "invalid_target")


async def test_conflicting_resource_and_audience_is_invalid_request(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    client_id, secret = await create_client(app, audiences=["a", "b"])
    response = await client.post(
        "/auth/token",
        data={**GRANT, "resource": "a", "audience": "b"},
        headers=basic(client_id, secret),
    )
    assert_oauth_error(response, 400, "invalid_request")


@pytest.fixture
async def limited_client(
    database_url: str, redis_url: str | None, clean_db: None
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = make_settings(
        auth_service_database_url=database_url, redis_url=redis_url, rate_limit_token="3/minute"
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.9", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield app, c


async def test_token_endpoint_is_rate_limited_per_ip(
    limited_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = limited_client
    client_id, secret = await create_client(app)
    statuses = []
    for _ in range(4):
        response = await client.post("/auth/token", data=GRANT, headers=basic(client_id, secret))
        statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 429]
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["error"] == "rate_limited"
    # An RFC 6749 body, as every answer of the token endpoint (issue 9).
    assert set(response.json()) == {"error", "error_description"}
    assert response.headers["cache-control"] == "no-store"
