"""Startup and shutdown hooks of this domain, called from main.lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI

from auth_service.clients.secrets import SecretHasher
from auth_service.config import Settings
from auth_service.oauth2.keys import KeyManager
from auth_service.oauth2.resolver import M2MTokenResolver
from auth_service.oauth2.tokens import TokenCodec


@dataclass(frozen=True, slots=True)
class OAuth2Runtime:
    """Per-process objects built once at startup, so requests only look them up."""

    keys: KeyManager
    codec: TokenCodec
    hasher: SecretHasher


async def startup(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    keys = KeyManager(app.state.session_factory, settings)
    await keys.start()
    codec = TokenCodec(
        keys, issuer=settings.token_issuer, ttl_seconds=settings.access_token_ttl_seconds
    )
    app.state.oauth2 = OAuth2Runtime(
        keys=keys,
        codec=codec,
        hasher=SecretHasher(settings.client_secret_pepper.get_secret_value()),
    )
    app.state.token_resolvers.append(
        M2MTokenResolver(codec, app.state.kv, settings.default_audience)
    )


async def shutdown(app: FastAPI) -> None:
    runtime: OAuth2Runtime | None = getattr(app.state, "oauth2", None)
    if runtime is not None:
        await runtime.keys.stop()
