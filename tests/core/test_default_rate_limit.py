"""RATE_LIMIT_DEFAULT: every admin and user endpoint without a limit of its own gets it."""

from __future__ import annotations

import httpx

from auth_service.main import create_app
from tests.conftest import make_settings
from tests.factories import admin_headers


async def test_admin_and_user_endpoints_share_the_default_limit_per_ip(database_url: str) -> None:
    settings = make_settings(
        auth_service_database_url=database_url, redis_url=None, rate_limit_default="4/minute"
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        limited = httpx.ASGITransport(app=app, client=("127.0.0.7", 50000))
        other_ip = httpx.ASGITransport(app=app, client=("127.0.0.8", 50000))
        async with (
            httpx.AsyncClient(transport=limited, base_url="http://t") as c,
            httpx.AsyncClient(transport=other_ip, base_url="http://t") as other,
        ):
            headers = await admin_headers(app, c)  # one token: /auth/token is not counted
            statuses = [
                (await c.get("/auth/admin/roles", headers=headers)).status_code,
                (await c.get("/auth/admin/clients", headers=headers)).status_code,
                (await c.get("/auth/admin/permissions", headers=headers)).status_code,
                (await c.get("/auth/users/me")).status_code,  # 401: no token, still counted
                (await c.get("/auth/admin/roles", headers=headers)).status_code,
            ]
            refused = await c.get("/auth/admin/clients", headers=headers)
            # Another address, the token endpoint and the probes are not affected.
            elsewhere = await other.get("/auth/admin/roles", headers=headers)
            token = await c.post("/auth/token", data={"grant_type": "client_credentials"})
            health = await c.get("/health")
            metadata = await c.get("/.well-known/openid-configuration")
    assert statuses == [200, 200, 200, 401, 429]
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    assert elsewhere.status_code == 200
    assert token.status_code == 401  # reached the endpoint (no credentials), not 429
    assert (health.status_code, metadata.status_code) == (200, 200)
