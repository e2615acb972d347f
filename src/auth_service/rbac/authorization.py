"""The permission check every admin endpoint declares.

`require_permission("clients:write")` resolves the bearer token to an identity, loads that
identity's roles and permissions from the database (never from the token, so a removed role
or a deactivated client takes effect at once), and answers 401 or 403.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

from fastapi import Depends, Request, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, OAuth2

from auth_service.audit import AuditAction, AuditEvent, Outcome, Target
from auth_service.core.actor import Actor, ActorKind
from auth_service.core.db import DbSession
from auth_service.core.errors import Forbidden, Unauthorized
from auth_service.core.security import Identity, resolve_identity
from auth_service.rbac.constants import ADMIN_ROLE
from auth_service.rbac.repository import AuthorizationRepository

# auto_error=False: a missing token is our 401 body, not FastAPI's 403.
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="BearerToken",
    description="An access token: a machine token from POST /auth/token or a user's Supabase JWT.",
)

# The same Authorization: Bearer header, documented a second way: with it, Swagger UI's
# Authorize takes a client id and secret and fetches the token from POST /auth/token itself.
# The token URL is relative, so it resolves against /openapi.json behind ROOT_PATH too.
client_credentials_scheme = OAuth2(
    flows=OAuthFlows(
        clientCredentials=OAuthFlowClientCredentials(tokenUrl="auth/token", scopes={})
    ),
    scheme_name="ClientCredentials",
    description="A machine client's id and secret; the docs page fetches the token itself.",
    auto_error=False,
)


@dataclass(frozen=True, slots=True)
class Principal:
    identity: Identity
    roles: frozenset[str]
    permissions: frozenset[str]

    @property
    def subject(self) -> str:
        return str(self.identity.subject)

    def has(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def actor(self) -> Actor:
        """This principal as the privilege ceiling and the audit log see it."""
        kind = ActorKind.CLIENT if self.identity.kind == "client" else ActorKind.USER
        # `admin` is the top of the hierarchy: it may grant any permission, custom ones too
        # (which no role holds until granted), so its ceiling is unbounded.
        ceiling = None if ADMIN_ROLE in self.roles else self.permissions
        return Actor(kind, self.subject, self.roles, ceiling)


async def get_principal(
    request: Request,
    session: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
    _documented: Annotated[str | None, Security(client_credentials_scheme)],
) -> Principal:
    if credentials is None:
        raise Unauthorized("A bearer token is required.")
    identity = await resolve_identity(request, credentials.credentials)
    if identity is None:
        raise Unauthorized("The token is invalid, expired or revoked.", code="invalid_token")
    grants = await _client_grants(request, identity)
    if grants is None:
        grants = await AuthorizationRepository(session).grants_for(identity)
    if grants is None:
        # The client was deactivated or deleted, or the user's profile is disabled.
        raise Unauthorized("The token's subject is no longer active.", code="invalid_token")
    roles, permissions = grants
    return Principal(identity=identity, roles=roles, permissions=permissions)


async def _client_grants(
    request: Request, identity: Identity
) -> tuple[frozenset[str], frozenset[str]] | None:
    """A client's roles and permissions from the token endpoint's client cache (no query when
    warm). The cache is cleared on every change to clients, roles and permissions (commit hook
    here, NOTIFY from other replicas, bypassed while that channel is down), so a removed role
    or a deactivation still takes effect on the next call. None: not a client, or no cache."""
    runtime = getattr(request.app.state, "oauth2", None)
    if identity.kind != "client" or runtime is None:
        return None
    client = await runtime.service.cache.credentials(identity.subject)
    if client is None or not client.is_active:
        raise Unauthorized("The token's subject is no longer active.", code="invalid_token")
    return frozenset(client.roles), frozenset(client.permissions)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require_permission(*permissions: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency factory: the caller must hold every permission named."""
    needed = frozenset(permissions)

    async def dependency(request: Request, principal: CurrentPrincipal) -> Principal:
        missing = needed - principal.permissions
        if missing:
            raise Forbidden(
                f"Missing permission: {', '.join(sorted(missing))}.",
                code="insufficient_permissions",
                details={"required": sorted(needed)},
            )
        await require_admin_assurance(request, principal)
        return principal

    # Shown in OpenAPI through the endpoint's description (see `permission_doc`).
    dependency.__doc__ = f"Requires: {', '.join(sorted(needed))}"
    return dependency


class MfaRequired(Forbidden):
    code = "mfa_required"
    message = "Admin endpoints need a multi-factor (aal2) session for this account."


_STEP_UP = (
    "Step up: POST /auth/users/mfa/challenge, then /auth/users/mfa/verify, and call again with"
    " the aal2 access token it returns."
)
_ENROLL = (
    "Enroll a TOTP factor (POST /auth/users/mfa/enroll), verify it, and call again with the"
    " aal2 access token."
)


async def require_admin_assurance(request: Request, principal: Principal) -> None:
    """A human on an admin endpoint needs aal2 when they have a verified factor, or always
    with ADMIN_REQUIRE_MFA. Machine clients are not affected."""
    if principal.identity.kind != "user":
        return
    aal = principal.identity.claims.get("aal")
    if aal == "aal2":
        return
    hint: str | None = None
    if request.app.state.settings.admin_require_mfa:
        hint = _ENROLL
    factor_check = getattr(request.app.state, "factor_check", None)
    if factor_check is not None and await factor_check.has_verified_factor(
        principal.identity.subject
    ):
        hint = _STEP_UP
    if hint is None:
        return
    error = MfaRequired(details={"current_aal": str(aal or "aal1"), "hint": hint})
    error.audit_event = AuditEvent(
        AuditAction.MFA_REQUIRED,
        principal.actor,
        Target("endpoint", request.url.path[:128]),
        Outcome.DENIED,
        {"current_aal": str(aal or "aal1")},
    )
    raise error


class PermissionDoc(TypedDict):
    """Route kwargs; a TypedDict so `**permission_doc(...)` type-checks against APIRouter.get."""

    openapi_extra: dict[str, Any]
    description: str


def permission_doc(*permissions: str, description: str | None = None) -> PermissionDoc:
    """Route kwargs that make the required permission visible in OpenAPI.

    `description` (optional) goes first; the required permissions are appended to it.
    """
    text = ", ".join(f"`{p}`" for p in permissions)
    required = f"Requires permission {text}."
    return {
        "openapi_extra": {"x-required-permissions": list(permissions)},
        "description": f"{description}\n\n{required}" if description else required,
    }
