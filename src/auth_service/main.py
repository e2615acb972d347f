"""Application factory and lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from redis.asyncio import Redis
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from auth_service import __version__
from auth_service.audit import endpoints as audit_endpoints
from auth_service.clients import endpoints as clients_endpoints
from auth_service.clients import lifecycle as clients_lifecycle
from auth_service.config import Environment, IdentityProviderName, Settings, get_settings
from auth_service.core import health
from auth_service.core.db import create_engine, create_session_factory
from auth_service.core.docs import install_docs
from auth_service.core.errors import RETRY_AFTER, install_error_handlers
from auth_service.core.kv import KeyValueStore, MemoryStore, RedisStore, redis_pool
from auth_service.core.limits import InputLimitsMiddleware
from auth_service.core.logging import configure_logging
from auth_service.core.metrics import Metrics
from auth_service.core.middleware import RequestContextMiddleware
from auth_service.core.openapi import document_common_responses
from auth_service.core.probes import ProbeServer
from auth_service.core.ratelimit import RateLimiter
from auth_service.core.shedding import LoadSheddingMiddleware
from auth_service.identity.local import endpoints as local_identity_endpoints
from auth_service.oauth2 import endpoints as oauth2_endpoints
from auth_service.oauth2 import lifecycle as oauth2_lifecycle
from auth_service.oauth2.ratelimit import LocalRateLimiter
from auth_service.rbac import endpoints as rbac_endpoints
from auth_service.rbac import lifecycle as rbac_lifecycle
from auth_service.revocation import RevocationStore
from auth_service.startup import announce
from auth_service.users import endpoints as users_endpoints
from auth_service.users import lifecycle as users_lifecycle

# Order matters: signing keys and token resolvers first, then the identity provider, then the
# RBAC bootstrap, which may create the initial admin through that provider.
_DOMAINS = (oauth2_lifecycle, clients_lifecycle, users_lifecycle, rbac_lifecycle)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    if not settings.auth_service_database_url:
        raise RuntimeError(
            "AUTH_SERVICE_DATABASE_URL is not set. Use `make run` (embedded PostgreSQL) or set it."
        )
    RETRY_AFTER["seconds"] = settings.retry_after_seconds
    engine = create_engine(
        settings.auth_service_database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout_seconds,
        connect_timeout=settings.database_connect_timeout_seconds,
        statement_timeout=settings.database_statement_timeout_seconds,
    )
    kv: KeyValueStore
    if settings.redis_url:
        kv = RedisStore(Redis.from_pool(redis_pool(settings)), settings.redis_key_prefix)
    else:
        kv = MemoryStore()
    app.state.engine = engine
    app.state.session_factory = create_session_factory(engine)
    app.state.kv = kv
    app.state.revocations = revocations = RevocationStore(engine, kv)
    app.state.rate_limiter = RateLimiter(
        settings.redis_url,
        settings.redis_key_prefix,
        settings.rate_limit_enabled,
        pool=redis_pool(settings) if settings.redis_url else None,
    )
    app.state.default_rate_limiter = LocalRateLimiter(
        settings.rate_limit_default, settings.rate_limit_enabled
    )
    app.state.token_resolvers = []
    started = []
    await revocations.start()
    try:
        for domain in _DOMAINS:
            await domain.startup(app)
            started.append(domain)
        # Everything built so far lives as long as the process: keep it out of the collector's
        # scans, which shortens full collections (the latency tail under load).
        gc.freeze()
        async with _probe_port(app):
            announce(app)
            yield
    finally:
        gc.unfreeze()
        for domain in reversed(started):
            await domain.shutdown(app)
        await revocations.stop()
        await app.state.rate_limiter.close()
        await kv.close()
        await engine.dispose()


_READINESS_REFRESH_SECONDS = 1.0


@asynccontextmanager
async def _probe_port(app: FastAPI) -> AsyncIterator[None]:
    """/health and /ready on PROBE_PORT, served by a thread that overload cannot queue."""
    settings: Settings = app.state.settings
    if not settings.probe_port:
        yield
        return
    probes = ProbeServer(settings.host, settings.probe_port, settings.probe_stall_seconds)

    async def refresh() -> None:
        while True:
            await asyncio.sleep(_READINESS_REFRESH_SECONDS)
            probes.set_ready(*await health.readiness(app.state))

    probes.set_ready(*await health.readiness(app.state))  # a real answer from the first probe
    probes.start()
    refresher = asyncio.create_task(refresh(), name="readiness-refresh")
    try:
        yield
    finally:
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        await asyncio.to_thread(probes.stop)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.logging_level, settings.effective_log_format.value)
    app = FastAPI(
        title="auth_service",
        version=__version__,
        summary="Identity front door: Supabase Auth users, OAuth2 client credentials, RBAC.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(
        InputLimitsMiddleware,
        max_body_bytes=settings.max_request_body_bytes,
        max_bearer_bytes=settings.max_bearer_token_bytes,
        max_header_bytes=settings.max_header_bytes,
    )
    # Inside the request context (so shed requests get an id, a log line and a metric).
    app.add_middleware(
        LoadSheddingMiddleware,
        max_in_flight=settings.max_requests_in_flight,
        root_path=settings.root_path,
    )
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)
    # Outermost (added last): every layer below sees the trusted client IP (issue 9).
    if settings.forwarded_allow_ips:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)

    # Routes are matched in order: the token endpoint is the hot path, so its router goes first.
    app.include_router(oauth2_endpoints.router)
    app.include_router(health.router)
    if settings.docs_enabled:
        install_docs(app)
    app.include_router(clients_endpoints.router)
    app.include_router(rbac_endpoints.router)
    app.include_router(users_endpoints.router)
    app.include_router(local_identity_endpoints.router)
    if (
        settings.environment is Environment.DEVELOPMENT
        and settings.active_identity_provider is IdentityProviderName.LOCAL
    ):
        app.include_router(local_identity_endpoints.dev_router)
    app.include_router(audit_endpoints.router)
    document_common_responses(app)
    return app
