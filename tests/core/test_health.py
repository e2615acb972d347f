from __future__ import annotations

import httpx


async def test_health_is_200(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_checks_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json()["checks"]["database"] == "ok"


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    assert echoed.headers["x-content-type-options"] == "nosniff"
    generated = await client.get("/health")
    assert len(generated.headers["x-request-id"]) == 32
    forged = await client.get("/health", headers={"X-Request-ID": "bad id\nwith newline"})
    assert forged.headers["x-request-id"] != "bad id\nwith newline"


async def test_unknown_route_has_the_error_body(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope", headers={"X-Request-ID": "rid-1"})
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "Not Found", "request_id": "rid-1"}


async def test_the_root_points_to_the_docs_and_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    body = response.json()
    assert (body["docs"], body["health"], body["ready"]) == ("/docs", "/health", "/ready")
    assert (await client.get(body["docs"])).status_code == 200
    assert (await client.get(body["health"])).json() == {"status": "ok"}
