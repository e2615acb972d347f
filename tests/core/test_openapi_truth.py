"""OpenAPI documents what any operation can answer; 405 and OPTIONS list every allowed method."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI


async def test_every_operation_documents_503_and_body_operations_document_400(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()
    operations = [
        (path, method, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in {"get", "put", "post", "delete", "patch"}
    ]
    assert len(operations) > 40
    for path, method, op in operations:
        assert "503" in op["responses"], (method, path)
        assert "Retry-After" in op["responses"]["503"]["headers"]
        if "requestBody" in op:
            assert "400" in op["responses"], (method, path)


async def test_405_and_options_list_every_method_of_the_path(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    path = f"/auth/admin/clients/{uuid.uuid4()}"
    refused = await client.patch(path)
    assert refused.status_code == 405
    assert refused.json()["error"] == "method_not_allowed"
    allow = {m.strip() for m in refused.headers["allow"].split(",")}
    assert {"GET", "PUT", "DELETE", "OPTIONS"} <= allow

    options = await client.options(path)
    assert options.status_code == 204
    assert {m.strip() for m in options.headers["allow"].split(",")} == allow
    # An unknown path is still a 404, whatever the method.
    assert (await client.options("/no/such/path")).status_code == 404
