"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from auth_service.core.errors import NotFound, Unauthorized
from auth_service.core.metrics import CONTENT_TYPE_LATEST

router = APIRouter(tags=["operations"])
logger = logging.getLogger("auth_service.health")

_CHECK_TIMEOUT_SECONDS = 2.0


@router.get("/", summary="Where to go from here: the API docs and the health checks")
async def index(request: Request) -> dict[str, str]:
    root = request.scope.get("root_path", "").rstrip("/")
    return {
        "service": "auth_service",
        "docs": f"{root}/docs",
        "openapi": f"{root}/openapi.json",
        "health": f"{root}/health",
        "ready": f"{root}/ready",
        "metadata": f"{root}/.well-known/oauth-authorization-server",
    }


@router.get("/health", summary="Liveness: the process is up")
async def health() -> dict[str, str]:
    return {"status": "ok"}


async def _check_database(state: Any) -> None:
    async with state.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _check_redis(state: Any) -> None:
    if not await state.kv.ping():
        raise RuntimeError("redis did not answer PING")


async def readiness(state: Any) -> tuple[int, dict[str, Any]]:
    """Check the database and Redis: the status and body of /ready (also fed to the probe port)."""
    checks: dict[str, Any] = {}
    targets = {"database": _check_database}
    if state.settings.redis_url:
        targets["redis"] = _check_redis
    for name, check in targets.items():
        try:
            await asyncio.wait_for(check(state), _CHECK_TIMEOUT_SECONDS)
            checks[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; the type is enough to act on
            logger.warning(
                "readiness check failed", extra={"check": name, "error_type": type(exc).__name__}
            )
            checks[name] = "unavailable"
    for name, state_ in checks.items():
        state.metrics.dependency_up.labels(name).set(1 if state_ == "ok" else 0)
    failing = [name for name, state_ in checks.items() if state_ != "ok"]
    provider = getattr(state, "identity_provider_name", None)
    if failing:
        body = {"status": "unavailable", "failing": failing, "checks": checks}
        return 503, {**body, "identity_provider": provider}
    return 200, {"status": "ok", "checks": checks, "identity_provider": provider}


@router.get(
    "/ready",
    summary="Readiness: the database and Redis answer",
    responses={503: {"description": "A dependency is down; `checks` names it."}},
)
async def ready(request: Request) -> JSONResponse:
    status, body = await readiness(request.app.state)
    return JSONResponse(body, status_code=status)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    settings = request.app.state.settings
    token = settings.metrics_token
    if token is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        expected = token.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise Unauthorized("/metrics needs the metrics bearer token.")
    elif settings.is_production:
        # No token configured: production does not publish its internals.
        raise NotFound()
    registry = request.app.state.metrics
    oauth2 = getattr(request.app.state, "oauth2", None)
    if oauth2 is not None:
        registry.signing_key_created.set(oauth2.keys.ring.signing_created_at)
    return Response(registry.render(), media_type=CONTENT_TYPE_LATEST)
