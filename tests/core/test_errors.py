from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from auth_service.config import Settings
from auth_service.core.errors import Conflict
from auth_service.core.logging import JsonFormatter
from auth_service.main import create_app
from tests.factories import admin_headers


class Payload(BaseModel):
    name: str
    count: int


@pytest.fixture
async def probe_client(settings: Settings, clean_db: None) -> AsyncIterator[httpx.AsyncClient]:
    """The real app plus three probe routes that fail in each of the ways we must handle."""
    app: FastAPI = create_app(settings)

    @app.post("/_probe/validate")
    async def validate(payload: Payload) -> dict[str, str]:
        return {"name": payload.name}

    @app.get("/_probe/conflict")
    async def conflict() -> None:
        raise Conflict("The name is taken.", code="name_taken")

    @app.get("/_probe/crash")
    async def crash() -> None:
        raise RuntimeError("secret-value-that-must-not-leak")

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def test_validation_errors_are_422_with_codes_and_no_input_echo(
    probe_client: httpx.AsyncClient,
) -> None:
    response = await probe_client.post(
        "/_probe/validate", json={"name": "hunter2-password", "count": "many"}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_error"
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["details"] == [
        {"loc": ["body", "count"], "type": "int_parsing", "message": body["details"][0]["message"]}
    ]
    assert "hunter2" not in response.text


async def test_malformed_json_is_422_not_500(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post(
        "/_probe/validate", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"


async def test_app_errors_carry_status_and_code(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.get("/_probe/conflict")
    assert response.status_code == 409
    assert response.json()["error"] == "name_taken"
    assert response.json()["message"] == "The name is taken."


async def test_method_not_allowed_uses_the_error_body(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.delete("/health")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


async def test_unhandled_errors_are_500_with_request_id_and_no_trace(
    probe_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = await probe_client.get("/_probe/crash", headers={"X-Request-ID": "crash-1"})
    assert response.status_code == 500
    assert response.json() == {
        "error": "internal_error",
        "message": "An unexpected error occurred.",
        "request_id": "crash-1",
    }
    assert response.headers["x-request-id"] == "crash-1"
    formatter = JsonFormatter()
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    crash = [json.loads(line) for line in logged.splitlines() if "unhandled error" in line]
    assert len(crash) == 1
    assert crash[0]["request_id"] == "crash-1"
    assert crash[0]["error_type"] == "RuntimeError"
    assert "Traceback" not in logged
    assert "secret-value-that-must-not-leak" not in logged
    assert "secret-value-that-must-not-leak" not in response.text


async def test_values_the_database_cannot_store_are_422_not_500(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    headers = await admin_headers(app, client)
    nul_in_json = await client.post(
        "/auth/admin/roles", json={"name": "auditor", "description": "a\u0000b"}, headers=headers
    )
    nul_in_query = await client.get("/auth/admin/roles", params={"name": "a\x00"}, headers=headers)
    # A description's schema forbids NUL, so validation refuses it; the query parameter
    # reaches the database, whose refusal is still a 422, not a 500.
    assert nul_in_json.status_code == 422, nul_in_json.text
    assert nul_in_json.json()["error"] == "validation_error"
    assert nul_in_query.status_code == 422, nul_in_query.text
    assert nul_in_query.json()["error"] == "invalid_value"
    # Nothing was half-written: the role does not exist.
    listed = await client.get("/auth/admin/roles", params={"name": "auditor"}, headers=headers)
    assert listed.json()["total"] == 0


async def test_huge_offsets_are_rejected_by_validation(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    headers = await admin_headers(app, client)
    for path in ("/auth/admin/roles", "/auth/admin/permissions", "/auth/admin/clients"):
        response = await client.get(path, params={"offset": 10**20}, headers=headers)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["error"] == "validation_error"
