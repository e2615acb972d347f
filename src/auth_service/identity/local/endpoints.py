"""Endpoints only the local identity provider has: the social sign-in hops and the dev mailbox.

`/auth/v1/authorize` and `/auth/v1/callback` sit where GoTrue has them, so the PKCE flow in
users/endpoints.py works unchanged: it ends by redirecting to `redirect_to?code=...`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse

from auth_service.config import Environment, Settings
from auth_service.core.errors import AppError, NotFound
from auth_service.identity.local.adapter import LocalIdentityProvider
from auth_service.identity.local.oidc import OidcError, OidcProviderDisabled
from auth_service.identity.local.repository import LocalIdentityRepository

router = APIRouter(tags=["local identity provider"])
# Mounted (and so in the OpenAPI) only in development with the local provider: see main.py.
dev_router = APIRouter(tags=["local identity provider"])
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class InvalidAuthorizeRequest(AppError):
    status_code = 400
    code = "validation_failed"
    message = "The authorize request is missing a PKCE S256 challenge or redirect_to."


def local_provider(request: Request) -> LocalIdentityProvider:
    provider = getattr(request.app.state, "identity_provider", None)
    if not isinstance(provider, LocalIdentityProvider):
        raise NotFound("Not found.")
    return provider


LocalProvider = Annotated[LocalIdentityProvider, Depends(local_provider)]


@router.get("/auth/v1/authorize", status_code=302, include_in_schema=False)
async def authorize(
    provider: LocalProvider,
    provider_name: Annotated[str, Query(alias="provider", max_length=32)],
    redirect_to: Annotated[str | None, Query(max_length=2048)] = None,
    code_challenge: Annotated[str | None, Query(max_length=128)] = None,
    code_challenge_method: Annotated[str | None, Query(max_length=8)] = None,
) -> RedirectResponse:
    if not provider.upstreams or not provider.upstreams.is_configured(provider_name):
        raise OidcProviderDisabled()
    if not redirect_to or not code_challenge or (code_challenge_method or "").lower() != "s256":
        raise InvalidAuthorizeRequest()
    # redirect_to was built by /auth/users/login/{provider} and must point back at us.
    if not redirect_to.startswith(provider.base_url + "/"):
        raise InvalidAuthorizeRequest("redirect_to must be this service's OAuth callback.")
    url = await provider.oauth_start(
        provider_name, redirect_to=redirect_to, code_challenge=code_challenge
    )
    return RedirectResponse(url, status_code=302, headers=NO_STORE)


@router.get("/auth/v1/callback", status_code=302, include_in_schema=False)
async def callback(
    provider: LocalProvider,
    state: Annotated[str | None, Query(max_length=256)] = None,
    code: Annotated[str | None, Query(max_length=2048)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
) -> RedirectResponse:
    if error or not state or not code:
        raise OidcError()
    url = await provider.oauth_finish(state=state, code=code)
    return RedirectResponse(url, status_code=302, headers=NO_STORE)


@dev_router.get("/dev/mailbox", summary="Development only: mail the local provider 'sent'")
async def dev_mailbox(
    request: Request,
    provider: LocalProvider,
    to: Annotated[str | None, Query(max_length=320)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> list[dict[str, Any]]:
    settings: Settings = request.app.state.settings
    if settings.environment is not Environment.DEVELOPMENT:  # mounted there only; be sure
        raise NotFound("Not found.")
    async with provider.session_factory() as session:
        rows = await LocalIdentityRepository(session).mailbox(
            to.strip().lower() if to else None, limit
        )
    return [
        {
            "id": row.id,
            "to": row.to_address,
            "subject": row.subject,
            "body": row.body,
            "created_at": row.created_at.isoformat(),
            **{k: row.meta.get(k) for k in ("type", "token", "token_hash", "link")},
        }
        for row in rows
    ]
