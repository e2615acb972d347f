"""/auth/users (human sign-in over the identity provider) and /auth/admin/users."""

from __future__ import annotations

import hmac
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request, Response, Security, status
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials

from auth_service.config import Environment, Settings
from auth_service.core.db import DbSession
from auth_service.core.errors import AppError, Unauthorized
from auth_service.core.ratelimit import DefaultRateLimit, RateLimiter, client_ip, hashed, rate_limit
from auth_service.identity.errors import IdentityProviderNotConfigured
from auth_service.identity.port import CallerContext, IdentityProvider, IdentitySession
from auth_service.rbac.authorization import (
    CurrentPrincipal,
    Principal,
    bearer_scheme,
    permission_doc,
    require_permission,
)
from auth_service.users import oauth_state
from auth_service.users.repository import ProfileRepository
from auth_service.users.schemas import (
    AcceptedResponse,
    AdminUserResponse,
    BanRequest,
    EmailRequest,
    LoginRequest,
    MeResponse,
    MfaChallengeRequest,
    MfaChallengeResponse,
    MfaEnrollRequest,
    MfaEnrollResponse,
    MfaFactorOut,
    MfaVerifyRequest,
    PasswordUpdateRequest,
    ProfileOut,
    ProfileUpdate,
    RefreshRequest,
    RegisterRequest,
    RegisterResponse,
    ResendRequest,
    SessionResponse,
    TotpDetails,
    UserOut,
    VerifyRequest,
)
from auth_service.users.service import (
    AdminUserService,
    AdminUserView,
    Caller,
    UserService,
    check_redirect,
)
from auth_service.users.tokens import SupabaseTokenVerifier

router = APIRouter()
users = APIRouter(prefix="/auth/users", tags=["users"], dependencies=[DefaultRateLimit])
admin = APIRouter(
    prefix="/auth/admin/users", tags=["admin: users"], dependencies=[DefaultRateLimit]
)

OAUTH_COOKIE = "auth_service_oauth"
_PROVIDER = re.compile(r"^[a-z0-9_-]{1,32}$")
_SENT = "If the address can be used, an email is on its way."
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class InvalidOAuthState(AppError):
    status_code = 400
    code = "invalid_oauth_state"
    message = "The OAuth state is missing, expired or does not match. Start the sign-in again."


class OAuthProviderError(AppError):
    status_code = 400
    code = "oauth_provider_error"
    message = "The sign-in with the external provider was cancelled or failed."


# --- dependencies ------------------------------------------------------------------------------
def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_provider(request: Request) -> IdentityProvider:
    provider: IdentityProvider | None = getattr(request.app.state, "identity_provider", None)
    if provider is None:
        raise IdentityProviderNotConfigured()
    return provider


def caller_context(request: Request) -> CallerContext:
    settings = _settings(request)
    if not settings.supabase_forward_client_ip:
        return CallerContext()
    return CallerContext(ip=client_ip(request))


def get_user_service(
    request: Request,
    session: DbSession,
    provider: Annotated[IdentityProvider, Depends(get_provider)],
    ctx: Annotated[CallerContext, Depends(caller_context)],
) -> UserService:
    return UserService(
        provider, ProfileRepository(session), request.app.state.revocations, ctx, session
    )


async def current_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> Caller:
    if credentials is None:
        raise Unauthorized("A bearer token is required.")
    verifier: SupabaseTokenVerifier | None = getattr(request.app.state, "user_token_verifier", None)
    if verifier is None:
        raise IdentityProviderNotConfigured()
    claims = await verifier.verify(credentials.credentials)
    if claims is None:
        raise Unauthorized("The token is invalid, expired or revoked.", code="invalid_token")
    return Caller(
        user_id=uuid.UUID(str(claims["sub"])), access_token=credentials.credentials, claims=claims
    )


async def limit_by_email(request: Request, setting: str, name: str, email: str) -> None:
    """Per-account limit on top of the per-IP one, so one address cannot be hammered."""
    limiter: RateLimiter = request.app.state.rate_limiter
    await limiter.hit(getattr(_settings(request), setting), name, hashed(email))


Users = Annotated[UserService, Depends(get_user_service)]
CurrentCaller = Annotated[Caller, Depends(current_caller)]
UsersRead = Annotated[Principal, Depends(require_permission("users:read"))]
UsersWrite = Annotated[Principal, Depends(require_permission("users:write"))]


def _session_out(session: IdentitySession) -> SessionResponse:
    return SessionResponse(
        access_token=session.access_token,
        refresh_token=session.refresh_token,
        token_type=session.token_type,
        expires_in=session.expires_in,
        expires_at=session.expires_at,
        user=UserOut(
            id=session.user.id,
            email=session.user.email,
            email_confirmed=session.user.email_confirmed,
        ),
        aal=session.aal,
        next_aal=session.next_aal,
    )


def _tokens(session: IdentitySession, status_code: int = 200) -> JSONResponse:
    return JSONResponse(
        _session_out(session).model_dump(mode="json"), status_code=status_code, headers=NO_STORE
    )


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "Rejected request (e.g. `redirect_not_allowed`, `invalid_oauth_state`).",
        401: "`invalid_credentials`, `invalid_token`, `otp_expired`, `invalid_refresh_token`, "
        "`mfa_verification_failed`.",
        403: "`email_not_confirmed`, `user_banned`, `insufficient_aal`,"
        " `insufficient_permissions`,"
        " `privilege_ceiling` (the user holds permissions or roles the caller does not),"
        " `mfa_required` (a human admin must step up to aal2).",
        404: "`user_not_found`, `mfa_factor_not_found`.",
        409: "`user_already_exists`, `username_taken`, `last_admin`.",
        422: "`validation_error` or `weak_password` (details.reasons).",
        429: "`rate_limited`, with Retry-After.",
        503: "`identity_provider_unavailable`.",
    }
    return {code: {"description": text[code]} for code in codes}


# --- registration and sign-in -------------------------------------------------------------------
@users.post(
    "/register",
    status_code=201,
    response_model=RegisterResponse,
    dependencies=[Depends(rate_limit("register", "rate_limit_register"))],
    responses=_errors(400, 409, 422, 429, 503),
    summary="Create an account (Supabase user and profile)",
)
async def register(request: Request, body: RegisterRequest, service: Users) -> JSONResponse:
    redirect_to = check_redirect(body.redirect_to, _settings(request).oauth_redirect_allow_list)
    result = await service.register(
        body.email,
        body.password.get_secret_value(),
        username=body.username,
        first_name=body.first_name,
        last_name=body.last_name,
        redirect_to=redirect_to,
    )
    out = RegisterResponse(
        status="registered" if result.session else "confirmation_required",
        user=UserOut(
            id=result.user.id, email=result.user.email, email_confirmed=result.user.email_confirmed
        )
        if result.user
        else None,
        session=_session_out(result.session) if result.session else None,
    )
    return JSONResponse(out.model_dump(mode="json"), status_code=201, headers=NO_STORE)


@users.post(
    "/login",
    response_model=SessionResponse,
    dependencies=[Depends(rate_limit("login", "rate_limit_login"))],
    responses=_errors(401, 403, 422, 429, 503),
    summary="Sign in with email and password",
)
async def login(request: Request, body: LoginRequest, service: Users) -> JSONResponse:
    await limit_by_email(request, "rate_limit_login", "login-email", body.email)
    return _tokens(await service.login(body.email, body.password.get_secret_value()))


@users.post(
    "/login/magiclink",
    status_code=202,
    response_model=AcceptedResponse,
    dependencies=[Depends(rate_limit("magiclink", "rate_limit_password_reset"))],
    responses=_errors(400, 422, 429, 503),
    summary="Email a sign-in link (same answer whether or not the address exists)",
)
async def magic_link(request: Request, body: EmailRequest, service: Users) -> AcceptedResponse:
    settings = _settings(request)
    redirect_to = check_redirect(body.redirect_to, settings.oauth_redirect_allow_list)
    await limit_by_email(request, "rate_limit_password_reset", "magiclink-email", body.email)
    await service.send_magic_link(
        body.email, create_user=settings.magic_link_create_user, redirect_to=redirect_to
    )
    return AcceptedResponse(message=_SENT)


@users.post(
    "/verify",
    response_model=SessionResponse,
    dependencies=[Depends(rate_limit("verify", "rate_limit_login"))],
    responses=_errors(401, 422, 429, 503),
    summary="Exchange an email OTP or token_hash for a session",
)
async def verify(request: Request, body: VerifyRequest, service: Users) -> JSONResponse:
    # Per account (or per link) too: spreading OTP guesses over many IPs does not help.
    account = body.email or body.token_hash or body.token or ""
    await limit_by_email(request, "rate_limit_login", "verify-account", account)
    session = await service.verify(
        type=body.type, email=body.email, token=body.token, token_hash=body.token_hash
    )
    return _tokens(session)


@users.post(
    "/verify/resend",
    status_code=202,
    response_model=AcceptedResponse,
    dependencies=[Depends(rate_limit("resend", "rate_limit_password_reset"))],
    responses=_errors(400, 422, 429, 503),
    summary="Send the confirmation email again",
)
async def resend(request: Request, body: ResendRequest, service: Users) -> AcceptedResponse:
    redirect_to = check_redirect(body.redirect_to, _settings(request).oauth_redirect_allow_list)
    await limit_by_email(request, "rate_limit_password_reset", "resend-email", body.email)
    await service.resend(type=body.type, email=body.email, redirect_to=redirect_to)
    return AcceptedResponse(message=_SENT)


@users.post(
    "/token/refresh",
    response_model=SessionResponse,
    dependencies=[Depends(rate_limit("refresh", "rate_limit_refresh"))],
    responses=_errors(401, 422, 429, 503),
    summary="Rotate the refresh token for a new session",
)
async def refresh(request: Request, body: RefreshRequest, service: Users) -> JSONResponse:
    token = body.refresh_token
    await limit_by_email(request, "rate_limit_refresh", "refresh-token", token)
    return _tokens(await service.refresh(token))


@users.post(
    "/logout",
    status_code=204,
    responses=_errors(401, 503),
    summary="Sign out this session, every session (?scope=global) or the others (?scope=others)",
)
async def logout(
    caller: CurrentCaller,
    service: Users,
    scope: Annotated[Literal["local", "global", "others"], Query()] = "local",
) -> Response:
    await service.logout(caller, scope)
    return Response(status_code=204)


@users.post(
    "/password/reset",
    status_code=202,
    response_model=AcceptedResponse,
    dependencies=[Depends(rate_limit("password-reset", "rate_limit_password_reset"))],
    responses=_errors(400, 422, 429, 503),
    summary="Email a password-reset link (same answer whether or not the address exists)",
)
async def password_reset(request: Request, body: EmailRequest, service: Users) -> AcceptedResponse:
    redirect_to = check_redirect(body.redirect_to, _settings(request).oauth_redirect_allow_list)
    await limit_by_email(request, "rate_limit_password_reset", "reset-email", body.email)
    await service.reset_password(body.email, redirect_to)
    return AcceptedResponse(message=_SENT)


@users.post(
    "/password/update",
    response_model=AcceptedResponse,
    dependencies=[Depends(rate_limit("password-update", "rate_limit_login"))],
    responses=_errors(401, 403, 422, 429, 503),
    summary="Change the signed-in user's password",
)
async def password_update(
    body: PasswordUpdateRequest, caller: CurrentCaller, service: Users
) -> AcceptedResponse:
    await service.update_password(caller, body.password.get_secret_value())
    return AcceptedResponse(message="The password was changed.")


# --- profile ------------------------------------------------------------------------------------
def _me(profile: Any, caller: Caller) -> MeResponse:
    return MeResponse(**ProfileOut.model_validate(profile).model_dump(), email=caller.email)


@users.get("/me", response_model=MeResponse, responses=_errors(401), summary="My profile")
async def get_me(caller: CurrentCaller, service: Users) -> MeResponse:
    return _me(await service.me(caller), caller)


@users.put(
    "/me", response_model=MeResponse, responses=_errors(401, 409, 422), summary="Edit my profile"
)
async def put_me(body: ProfileUpdate, caller: CurrentCaller, service: Users) -> MeResponse:
    profile = await service.update_me(caller, body.model_dump(exclude_unset=True))
    return _me(profile, caller)


# --- OAuth (PKCE) -------------------------------------------------------------------------------
ProviderName = Annotated[str, Path(max_length=32, description="e.g. github, google")]


@users.get(
    "/login/{provider}",
    status_code=302,
    response_class=RedirectResponse,
    responses={302: {"description": "To the provider's authorize URL"}, **_errors(400, 503)},
    summary="Start an OAuth sign-in (PKCE, S256)",
)
async def oauth_start(
    request: Request,
    provider: ProviderName,
    service: Users,
    redirect_to: Annotated[str | None, Query(max_length=2048)] = None,
) -> RedirectResponse:
    settings = _settings(request)
    if not _PROVIDER.match(provider):
        raise OAuthProviderError("Unknown provider.")
    redirect_to = check_redirect(redirect_to, settings.oauth_redirect_allow_list)
    state = oauth_state.new_state(provider, redirect_to, settings.oauth_state_ttl_seconds)
    callback = request.url_for("users_oauth_callback", provider=provider)
    url = service.oauth_authorize_url(
        provider,
        redirect_to=f"{callback}?{urlencode({'state': state.state})}",
        code_challenge=oauth_state.code_challenge(state.code_verifier),
    )
    response = RedirectResponse(url, status_code=302, headers=NO_STORE)
    response.set_cookie(
        OAUTH_COOKIE,
        oauth_state.seal(state, settings.oauth_state_secret.get_secret_value()),
        max_age=settings.oauth_state_ttl_seconds,
        path=callback.path,
        httponly=True,
        samesite="lax",
        secure=settings.environment not in (Environment.DEVELOPMENT, Environment.TEST),
    )
    return response


@users.get(
    "/login/{provider}/callback",
    name="users_oauth_callback",
    response_model=SessionResponse,
    responses={303: {"description": "To redirect_to, tokens in the fragment"}, **_errors(400, 503)},
    summary="Finish an OAuth sign-in: check state, exchange the code with the verifier",
)
async def oauth_callback(
    request: Request,
    provider: ProviderName,
    service: Users,
    state: Annotated[str | None, Query(max_length=256)] = None,
    code: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
) -> Response:
    settings = _settings(request)
    cookie = request.cookies.get(OAUTH_COOKIE)
    saved = (
        oauth_state.unseal(cookie, settings.oauth_state_secret.get_secret_value())
        if cookie
        else None
    )
    if (
        saved is None
        or not state
        or saved.provider != provider
        or not hmac.compare_digest(saved.state.encode(), state.encode())
    ):
        raise InvalidOAuthState()
    if error or not code:
        raise OAuthProviderError()
    session = await service.oauth_callback(code, saved.code_verifier)
    response: Response
    if saved.redirect_to:
        fragment = urlencode(
            {
                "access_token": session.access_token,
                "refresh_token": session.refresh_token,
                "expires_in": session.expires_in,
                "token_type": session.token_type,
            }
        )
        response = RedirectResponse(f"{saved.redirect_to}#{fragment}", 303, headers=NO_STORE)
    else:
        response = _tokens(session)
    response.delete_cookie(OAUTH_COOKIE, path=request.url.path, httponly=True, samesite="lax")
    return response


# --- MFA (TOTP) ---------------------------------------------------------------------------------
@users.post(
    "/mfa/enroll",
    response_model=MfaEnrollResponse,
    responses=_errors(401, 403, 422, 503),
    summary="Enroll a TOTP factor (unverified until the first verify)",
)
async def mfa_enroll(body: MfaEnrollRequest, caller: CurrentCaller, service: Users) -> JSONResponse:
    enrolled = await service.mfa_enroll(caller, body.friendly_name)
    out = MfaEnrollResponse(
        factor_id=enrolled.factor_id,
        totp=TotpDetails(secret=enrolled.secret, uri=enrolled.uri, qr_code=enrolled.qr_code),
    )
    return JSONResponse(out.model_dump(mode="json"), headers=NO_STORE)


@users.post(
    "/mfa/challenge",
    response_model=MfaChallengeResponse,
    responses=_errors(401, 404, 422, 503),
    summary="Open a challenge for a factor",
)
async def mfa_challenge(
    body: MfaChallengeRequest, caller: CurrentCaller, service: Users
) -> MfaChallengeResponse:
    challenge = await service.mfa_challenge(caller, body.factor_id)
    return MfaChallengeResponse(challenge_id=challenge.id, expires_at=challenge.expires_at)


@users.post(
    "/mfa/verify",
    response_model=SessionResponse,
    dependencies=[Depends(rate_limit("mfa-verify", "rate_limit_login"))],
    responses=_errors(401, 404, 422, 429, 503),
    summary="Answer a challenge with a TOTP code; returns an aal2 session",
)
async def mfa_verify(
    request: Request, body: MfaVerifyRequest, caller: CurrentCaller, service: Users
) -> JSONResponse:
    # Per factor and per user: six digits must not be guessable from many IPs at once.
    await limit_by_email(request, "rate_limit_mfa_verify", "mfa-factor", body.factor_id)
    await limit_by_email(request, "rate_limit_mfa_verify", "mfa-user", str(caller.user_id))
    session = await service.mfa_verify(caller, body.factor_id, body.challenge_id, body.code)
    return _tokens(session)


@users.get(
    "/mfa/factors",
    response_model=list[MfaFactorOut],
    responses=_errors(401, 503),
    summary="My MFA factors",
)
async def mfa_factors(caller: CurrentCaller, service: Users) -> list[MfaFactorOut]:
    return [
        MfaFactorOut(
            id=f.id,
            factor_type=f.factor_type,
            status=f.status,
            friendly_name=f.friendly_name,
            created_at=f.created_at,
        )
        for f in await service.mfa_factors(caller)
    ]


@users.delete(
    "/mfa/factors/{factor_id}",
    status_code=204,
    responses=_errors(401, 403, 404, 503),
    summary="Remove a factor (a verified one needs an aal2 session)",
)
async def mfa_unenroll(
    factor_id: Annotated[str, Path(max_length=64)], caller: CurrentCaller, service: Users
) -> Response:
    await service.mfa_unenroll(caller, factor_id)
    return Response(status_code=204)


# --- admin --------------------------------------------------------------------------------------
def get_admin_service(
    request: Request, session: DbSession, principal: CurrentPrincipal
) -> AdminUserService:
    provider: IdentityProvider | None = getattr(request.app.state, "identity_provider", None)
    return AdminUserService(
        provider, ProfileRepository(session), request.app.state.revocations, actor=principal.actor
    )


AdminUsers = Annotated[AdminUserService, Depends(get_admin_service)]


@admin.get(
    "/{user_id}",
    response_model=AdminUserResponse,
    responses=_errors(401, 403, 404, 503),
    summary="A user's profile and roles",
    **permission_doc("users:read"),
)
async def admin_get_user(
    user_id: uuid.UUID, principal: UsersRead, service: AdminUsers
) -> AdminUserResponse:
    return _admin_user(await service.get(user_id))


def _admin_user(view: AdminUserView) -> AdminUserResponse:
    banned_until = view.identity.banned_until if view.identity else None
    return AdminUserResponse(
        user_id=view.user_id,
        email=view.identity.email if view.identity else None,
        email_confirmed=view.identity.email_confirmed if view.identity else None,
        profile=ProfileOut.model_validate(view.profile) if view.profile else None,
        roles=view.roles,
        banned_until=banned_until if banned_until and banned_until > datetime.now(UTC) else None,
    )


@admin.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_errors(401, 403, 404, 409, 503),
    summary="Delete the user in Supabase and our rows",
    **permission_doc("users:write"),
)
async def admin_delete_user(
    user_id: uuid.UUID, principal: UsersWrite, service: AdminUsers
) -> Response:
    await service.delete(user_id)
    return Response(status_code=204)


@admin.post(
    "/{user_id}/ban",
    response_model=AdminUserResponse,
    responses=_errors(401, 403, 404, 409, 422, 503),
    summary="Ban the user for a duration (GoTrue's ban_duration); 'none' lifts the ban",
    **permission_doc(
        "users:write",
        description=(
            "Sign-in, refresh and OTP verification are refused (`user_banned`) until the ban"
            " ends, and the user's outstanding access tokens stop working at once. Bounded like"
            " a delete: 403 `privilege_ceiling`, and 409 `last_admin` for the last admin who"
            " can still sign in."
        ),
    ),
)
async def admin_ban_user(
    user_id: uuid.UUID, body: BanRequest, principal: UsersWrite, service: AdminUsers
) -> AdminUserResponse:
    lasts = body.lasts()
    until = datetime.now(UTC) + lasts if lasts is not None else None
    return _admin_user(await service.ban(user_id, until))


@admin.delete(
    "/{user_id}/ban",
    response_model=AdminUserResponse,
    responses=_errors(401, 403, 404, 503),
    summary="Lift the user's ban",
    **permission_doc(
        "users:write",
        description="Tokens cut off by the ban stay refused; the user can sign in again.",
    ),
)
async def admin_unban_user(
    user_id: uuid.UUID, principal: UsersWrite, service: AdminUsers
) -> AdminUserResponse:
    return _admin_user(await service.ban(user_id, None))


router.include_router(users)
router.include_router(admin)
