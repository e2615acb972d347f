"""Startup and shutdown hooks of this domain, called from main.lifespan."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import asyncpg  # type: ignore[import-untyped]  # no stubs published
import httpx
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from auth_service.clients.keys import client_secret_encryptor
from auth_service.clients.repository import ClientCredentialsReader
from auth_service.clients.secrets import SecretHasher
from auth_service.config import Settings
from auth_service.core.db import async_database_url, connect_args
from auth_service.oauth2.assertions import ClientAssertionVerifier, ClientKeySets, ReplayCache
from auth_service.oauth2.client_cache import ChangeListener, ClientCache, install_write_hooks
from auth_service.oauth2.dpop import DpopNonces, DpopProofVerifier
from auth_service.oauth2.exchange import TokenExchange
from auth_service.oauth2.keys import KeyManager
from auth_service.oauth2.ratelimit import LocalRateLimiter
from auth_service.oauth2.resolver import M2MTokenResolver
from auth_service.oauth2.service import OAuthService
from auth_service.oauth2.tokens import TokenCodec


@dataclass(frozen=True, slots=True)
class OAuth2Runtime:
    """Per-process objects built once at startup, so requests only look them up."""

    keys: KeyManager
    codec: TokenCodec
    hasher: SecretHasher
    pool: asyncpg.Pool
    service: OAuthService
    limiter: LocalRateLimiter
    listener: ChangeListener
    exchange: TokenExchange
    jwks_http: httpx.AsyncClient


def asyncpg_dsn(url: str) -> str:
    """The service's database URL as a plain libpq-style DSN for asyncpg.connect."""
    parsed = make_url(async_database_url(url)).set(drivername="postgresql")
    query = dict(parsed.query)
    if "ssl" in query:  # core.db renamed libpq's sslmode for SQLAlchemy; asyncpg's DSN wants it
        query["sslmode"] = query.pop("ssl")
        parsed = parsed.set(query=query)
    return parsed.render_as_string(hide_password=False)


async def _no_reset(connection: asyncpg.Connection) -> None:
    # The token path runs single read-only statements outside transactions: nothing to reset,
    # so skip asyncpg's reset query (a round trip on every release).
    return None


async def startup(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    keys = KeyManager(app.state.session_factory, settings)
    await keys.start()
    codec = TokenCodec(keys, issuer=settings.issuer, ttl_seconds=settings.access_token_ttl_seconds)
    if not settings.auth_service_database_url:  # main.lifespan refuses to start without it
        raise RuntimeError("AUTH_SERVICE_DATABASE_URL is not set")
    dsn = asyncpg_dsn(settings.auth_service_database_url)
    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=settings.database_pool_size,
        reset=_no_reset,
        **connect_args(
            settings.database_connect_timeout_seconds,
            settings.database_statement_timeout_seconds,
        ),
    )
    reader = ClientCredentialsReader(pool, acquire_timeout=settings.database_pool_timeout_seconds)
    install_write_hooks()
    cache = ClientCache(reader, settings.client_cache_ttl_seconds)
    listener = ChangeListener(
        lambda: asyncpg.connect(dsn, timeout=settings.database_connect_timeout_seconds), cache
    )
    await listener.start()
    hasher = SecretHasher(settings.client_secret_pepper.get_secret_value())
    issuer = settings.issuer.rstrip("/")
    token_url = f"{issuer}/auth/token"
    jwks_http = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.client_jwks_timeout_seconds), follow_redirects=False
    )
    encryption_key = settings.signing_key_encryption_key.get_secret_value()
    assertions = ClientAssertionVerifier(
        cache,
        ClientKeySets(
            jwks_http,
            cache_seconds=settings.client_jwks_cache_seconds,
            min_refetch_seconds=settings.client_jwks_min_refetch_seconds,
            production=settings.is_production,
        ),
        ReplayCache(app.state.kv, "assertion:jti"),
        client_secret_encryptor(encryption_key),
        # RFC 7523 §3: the token endpoint URL or the issuer; the introspection and
        # revocation endpoints too, where the same assertion method is accepted.
        audiences={
            settings.issuer,
            issuer,
            token_url,
            f"{token_url}/introspect",
            f"{token_url}/revoke",
        },
        max_lifetime_seconds=settings.client_assertion_max_lifetime_seconds,
        leeway_seconds=settings.client_assertion_leeway_seconds,
    )
    nonces = None
    if settings.dpop_nonce_required:
        secret = hmac.new(encryption_key.encode(), b"dpop-nonce", hashlib.sha256).digest()
        nonces = DpopNonces(secret, settings.dpop_nonce_lifetime_seconds)
    dpop = DpopProofVerifier(
        ReplayCache(app.state.kv, "dpop:jti"),
        iat_window_seconds=settings.dpop_iat_window_seconds,
        nonces=nonces,
    )
    service = OAuthService(
        reader,
        cache,
        hasher=hasher,
        codec=codec,
        revocations=app.state.revocations,
        default_audience=settings.default_audience,
        assertions=assertions,
        dpop=dpop,
        token_url=token_url,
    )
    exchange = TokenExchange(
        app.state.token_resolvers, app.state.session_factory, codec, app.state.revocations
    )
    limiter = LocalRateLimiter(settings.rate_limit_token, settings.rate_limit_enabled)
    app.state.oauth2 = OAuth2Runtime(
        keys, codec, hasher, pool, service, limiter, listener, exchange, jwks_http
    )
    app.state.token_resolvers.append(
        M2MTokenResolver(codec, app.state.revocations, settings.default_audience)
    )


async def shutdown(app: FastAPI) -> None:
    runtime: OAuth2Runtime | None = getattr(app.state, "oauth2", None)
    if runtime is not None:
        await runtime.listener.stop()
        await runtime.keys.stop()
        await runtime.pool.close()
        await runtime.jwks_http.aclose()
