"""Startup and shutdown hooks of this domain, called from main.lifespan."""

from __future__ import annotations

import logging

import httpx
from fastapi import FastAPI

from auth_service.config import IdentityProviderName, Settings
from auth_service.identity.local.adapter import LocalIdentityProvider
from auth_service.identity.local.email import email_sender
from auth_service.identity.local.oidc import OidcUpstreams, parse_oidc_providers
from auth_service.identity.local.pruning import LocalPruner
from auth_service.identity.local.tokens import RingKeySource
from auth_service.identity.supabase import SupabaseIdentityProvider
from auth_service.users.factors import FactorCheck
from auth_service.users.tokens import JwksCache, SupabaseTokenVerifier

logger = logging.getLogger("auth_service.users")


async def startup(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    app.state.identity_provider = None
    app.state.user_token_verifier = None
    app.state.factor_check = FactorCheck(None)
    name = settings.active_identity_provider
    app.state.identity_provider_name = name.value
    if name is IdentityProviderName.LOCAL:
        await _start_local(app, settings)
    else:
        _start_supabase(app, settings)
    logger.info(
        "identity provider",
        extra={
            "identity_provider": name.value,
            "configured": app.state.identity_provider is not None,
        },
    )


async def _start_local(app: FastAPI, settings: Settings) -> None:
    upstreams = None
    providers = parse_oidc_providers(settings.oidc_providers)
    if providers:
        app.state.oidc_http = httpx.AsyncClient(timeout=httpx.Timeout(10.0))
        upstreams = OidcUpstreams(providers, app.state.oidc_http)
    keys = app.state.oauth2.keys
    provider = LocalIdentityProvider(
        session_factory=app.state.session_factory,
        keys=keys,
        settings=settings,
        kv=app.state.kv,
        sender=email_sender(settings, app.state.session_factory),
        upstreams=upstreams,
    )
    verifier = SupabaseTokenVerifier(
        issuer=provider.issuer,
        jwks=RingKeySource(keys),
        hs256_secret=None,
        revocations=app.state.revocations,
        max_lifetime_seconds=settings.access_token_max_lifetime_seconds,
    )
    app.state.identity_provider = provider
    app.state.user_token_verifier = verifier
    app.state.factor_check = FactorCheck(provider, settings.admin_mfa_factor_cache_seconds)
    app.state.token_resolvers.append(verifier)
    app.state.local_pruner = pruner = LocalPruner(
        app.state.session_factory, settings.local_prune_interval_seconds
    )
    pruner.start()


def _start_supabase(app: FastAPI, settings: Settings) -> None:
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
        revocations=app.state.revocations,
        max_lifetime_seconds=settings.access_token_max_lifetime_seconds,
    )
    app.state.identity_provider = provider
    app.state.user_token_verifier = verifier
    app.state.factor_check = FactorCheck(provider, settings.admin_mfa_factor_cache_seconds)
    app.state.jwks_http = jwks_http
    app.state.token_resolvers.append(verifier)


async def shutdown(app: FastAPI) -> None:
    pruner = getattr(app.state, "local_pruner", None)
    if pruner is not None:
        await pruner.stop()
    provider = getattr(app.state, "identity_provider", None)
    if provider is not None:
        await provider.close()
    for name in ("jwks_http", "oidc_http"):
        http = getattr(app.state, name, None)
        if http is not None:
            await http.aclose()
