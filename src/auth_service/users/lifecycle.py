"""Startup and shutdown hooks of this domain, called from main.lifespan."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from auth_service.config import Settings
from auth_service.identity.supabase_adapter import SupabaseIdentityProvider
from auth_service.users.factors import FactorCheck
from auth_service.users.tokens import JwksCache, SupabaseTokenVerifier


async def startup(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    app.state.identity_provider = None
    app.state.user_token_verifier = None
    app.state.factor_check = FactorCheck(None)
    if not settings.supabase_url or not settings.supabase_anon_key:
        return  # Supabase not configured: human sign-in answers 503, machine tokens still work
    anon_key = settings.supabase_anon_key.get_secret_value()
    service_key = settings.supabase_service_role_key
    provider = SupabaseIdentityProvider(
        url=settings.supabase_url,
        anon_key=anon_key,
        service_role_key=service_key.get_secret_value() if service_key else None,
        timeout_seconds=settings.supabase_timeout_seconds,
        forward_client_ip=settings.supabase_forward_client_ip,
    )
    jwks_http = httpx.AsyncClient(timeout=httpx.Timeout(settings.supabase_timeout_seconds))
    jwks = JwksCache(
        jwks_http,
        provider.auth_url + "/.well-known/jwks.json",
        apikey=anon_key,
        cache_seconds=settings.supabase_jwks_cache_seconds,
        min_refetch_seconds=settings.supabase_jwks_min_refetch_seconds,
    )
    secret = settings.supabase_jwt_secret
    verifier = SupabaseTokenVerifier(
        issuer=provider.auth_url,
        jwks=jwks,
        hs256_secret=secret.get_secret_value() if secret else None,
        kv=app.state.kv,
        max_lifetime_seconds=settings.access_token_max_lifetime_seconds,
    )
    app.state.identity_provider = provider
    app.state.user_token_verifier = verifier
    app.state.factor_check = FactorCheck(provider, settings.admin_mfa_factor_cache_seconds)
    app.state.jwks_http = jwks_http
    app.state.token_resolvers.append(verifier)


async def shutdown(app: FastAPI) -> None:
    provider = getattr(app.state, "identity_provider", None)
    if provider is not None:
        await provider.close()
    jwks_http = getattr(app.state, "jwks_http", None)
    if jwks_http is not None:
        await jwks_http.aclose()
