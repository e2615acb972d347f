"""Readiness against real failures, metrics, CORS and request ids."""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx

from auth_service.config import Settings
from auth_service.core.embedded_pg import embedded_postgres
from auth_service.main import create_app
from tests.conftest import make_settings, run_alembic


async def _get(app_settings: Settings, path: str) -> httpx.Response:
    app = create_app(app_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return await c.get(path)


async def test_ready_turns_503_naming_the_database_when_postgres_stops() -> None:
    with tempfile.TemporaryDirectory(prefix="auth-ready-") as tmp:
        server = embedded_postgres(Path(tmp) / "pgdata", delete=True)
        url = server.__enter__()
        stopped = False
        try:
            await run_alembic(url)
            app = create_app(make_settings(auth_service_database_url=url, redis_url=None))
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                    assert (await c.get("/ready")).status_code == 200
                    server.__exit__(None, None, None)  # stops the server for real
                    stopped = True
                    down = await c.get("/ready")
                    health = await c.get("/health")
        finally:
            if not stopped:
                server.__exit__(None, None, None)
    assert down.status_code == 503
    assert down.json() == {
        "status": "unavailable",
        "failing": ["database"],
        "checks": {"database": "unavailable"},
        "identity_provider": "local",
    }
    assert health.status_code == 200  # liveness does not depend on the database


async def test_ready_turns_503_naming_redis_when_redis_is_unreachable(database_url: str) -> None:
    response = await _get(
        make_settings(auth_service_database_url=database_url, redis_url="redis://127.0.0.1:1/0"),
        "/ready",
    )
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "failing": ["redis"],
        "checks": {"database": "ok", "redis": "unavailable"},
        "identity_provider": "local",
    }


async def test_ready_checks_redis_when_configured(require_redis: str, database_url: str) -> None:
    response = await _get(
        make_settings(auth_service_database_url=database_url, redis_url=require_redis), "/ready"
    )
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/health")
    await client.get("/nope/123")
    text = (await client.get("/metrics")).text
    assert 'http_requests_total{method="GET",route="/health",status="200"} 1.0' in text
    assert 'http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert 'http_request_duration_seconds_bucket{le="0.005",method="GET",route="/health"}' in text


async def test_cors_allows_configured_origins_only(database_url: str) -> None:
    settings = make_settings(
        auth_service_database_url=database_url, cors_origins=["https://app.example"]
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            allowed = await c.options(
                "/health",
                headers={
                    "Origin": "https://app.example",
                    "Access-Control-Request-Method": "GET",
                },
            )
            denied = await c.get("/health", headers={"Origin": "https://evil.example"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in denied.headers


async def test_openapi_and_docs_render(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger-ui" in docs.text
    # Self-hosted: no third-party script on the page where admins paste tokens.
    assert "cdn.jsdelivr.net" not in docs.text
    assert "/docs/assets/swagger-ui-bundle.js" in docs.text
    assert "default-src 'self'" in docs.headers["content-security-policy"]
    bundle = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    assert "javascript" in bundle.headers["content-type"]
    assert len(bundle.content) > 100_000
    spec = (await client.get("/openapi.json")).json()
    assert spec["info"]["title"] == "auth_service"
    assert "/health" in spec["paths"]
    assert (await client.get("/redoc")).status_code == 404


async def test_docs_honour_root_path(database_url: str) -> None:
    # Behind a proxy that strips /identity, the server (uvicorn --root-path) sets root_path.
    app = create_app(make_settings(auth_service_database_url=database_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, root_path="/identity")
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            docs = await c.get("/docs")
    assert docs.status_code == 200
    assert "/identity/openapi.json" in docs.text
    assert "/identity/docs/assets/swagger-ui-bundle.js" in docs.text
