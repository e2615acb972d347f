"""What /openapi.json promises: the token endpoint's shapes, and how /docs logs in."""

from __future__ import annotations

from typing import Any

import httpx

from auth_service.oauth2.service import GRANT_TYPES


async def _spec(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    spec: dict[str, Any] = response.json()
    return spec


async def test_token_endpoint_documents_grant_types_and_the_token_response(
    client: httpx.AsyncClient,
) -> None:
    operation = (await _spec(client))["paths"]["/auth/token"]["post"]
    form = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert form["properties"]["grant_type"]["enum"] == list(GRANT_TYPES)
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["required"] == ["access_token", "token_type", "expires_in", "scope"]
    error = operation["responses"]["401"]["content"]["application/json"]["schema"]
    assert error["required"] == ["error"]


async def test_a_real_token_response_matches_its_documented_schema(
    client: httpx.AsyncClient, app: Any
) -> None:
    from tests.factories import create_client

    schema = (await _spec(client))["paths"]["/auth/token"]["post"]["responses"]["200"]
    properties = schema["content"]["application/json"]["schema"]["properties"]
    client_id, secret = await create_client(app)
    body = (
        await client.post(
            "/auth/token", data={"grant_type": "client_credentials"}, auth=(str(client_id), secret)
        )
    ).json()
    assert set(body) == set(properties)
    assert body["token_type"] in properties["token_type"]["enum"]


async def test_admin_operations_accept_a_bearer_token_or_client_credentials(
    client: httpx.AsyncClient,
) -> None:
    spec = await _spec(client)
    flows = spec["components"]["securitySchemes"]["ClientCredentials"]["flows"]
    # Relative, so it resolves against /openapi.json behind ROOT_PATH as well.
    assert flows == {"clientCredentials": {"tokenUrl": "auth/token", "scopes": {}}}
    assert spec["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    security = spec["paths"]["/auth/admin/roles"]["get"]["security"]
    assert {"BearerToken": []} in security
    assert {"ClientCredentials": []} in security


async def test_every_removal_documents_its_404(client: httpx.AsyncClient) -> None:
    paths = (await _spec(client))["paths"]
    for path in (
        "/auth/admin/clients/{client_id}/roles/{role_id}",
        "/auth/admin/roles/{role_id}/permissions/{permission_id}",
        "/auth/admin/users/{user_id}/roles/{role_id}",
    ):
        assert "404" in paths[path]["delete"]["responses"], path
    client_role = paths["/auth/admin/clients/{client_id}/roles/{role_id}"]["delete"]
    assert "assignment_not_found" in client_role["responses"]["404"]["description"]
