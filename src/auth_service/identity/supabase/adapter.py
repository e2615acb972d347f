"""`IdentityProvider` over Supabase Auth (GoTrue) through supabase-py's async auth client.

Server-side rules (see docs/supabase.md):
- a supabase-py client holds one session and shares its headers, so every user operation gets a
  fresh `AsyncGoTrueClient` (no persisted session, no auto-refresh); they are cheap because they
  all share one pooled `httpx.AsyncClient`, which also carries the timeout for every call;
- admin calls go through a separate service-role API object that never signs in;
- errors are mapped by GoTrue's error `code`, never its HTTP status, and never echoed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
import jwt
import pydantic
from supabase_auth import AsyncGoTrueAdminAPI, AsyncGoTrueClient
from supabase_auth.errors import (
    AuthApiError,
    AuthError,
    AuthSessionMissingError,
    AuthWeakPasswordError,
)
from supabase_auth.types import Session, User

from auth_service.core.errors import AppError
from auth_service.identity import errors
from auth_service.identity.port import (
    CallerContext,
    IdentitySession,
    IdentityUser,
    LogoutScope,
    MfaChallenge,
    MfaFactor,
    OtpType,
    ResendType,
    SignUpResult,
    TotpEnrollment,
)

logger = logging.getLogger("auth_service.identity.supabase")

T = TypeVar("T")

_CODE_MAP: dict[str, type[AppError]] = {
    "user_already_exists": errors.UserAlreadyExists,
    "email_exists": errors.UserAlreadyExists,
    "invalid_credentials": errors.InvalidCredentials,
    "email_not_confirmed": errors.EmailNotConfirmed,
    "otp_expired": errors.OtpExpired,
    "refresh_token_already_used": errors.RefreshTokenReused,
    "refresh_token_not_found": errors.InvalidRefreshToken,
    "session_not_found": errors.SessionNotFound,
    "session_expired": errors.SessionNotFound,
    "bad_jwt": errors.SessionNotFound,
    "no_authorization": errors.SessionNotFound,
    "user_not_found": errors.SessionNotFound,
    "insufficient_aal": errors.InsufficientAal,
    "mfa_verification_failed": errors.MfaVerificationFailed,
    "mfa_challenge_expired": errors.MfaVerificationFailed,
    "mfa_factor_not_found": errors.MfaFactorNotFound,
    "flow_state_not_found": errors.InvalidOAuthCode,
    "flow_state_expired": errors.InvalidOAuthCode,
    "bad_code_verifier": errors.InvalidOAuthCode,
    "bad_oauth_state": errors.InvalidOAuthCode,
    "otp_disabled": errors.OtpSignupsDisabled,
    "signup_disabled": errors.OtpSignupsDisabled,
    "user_banned": errors.UserBanned,
}


def map_auth_error(exc: AuthError) -> AppError:
    """Translate a supabase-py error into ours, by GoTrue's error code."""
    if isinstance(exc, AuthWeakPasswordError):
        return errors.WeakPassword([str(r) for r in (exc.reasons or [])])
    if isinstance(exc, AuthSessionMissingError):
        return errors.SessionNotFound()
    if isinstance(exc, AuthApiError):
        code = exc.code or ""
        if code == "weak_password":
            return errors.WeakPassword([])
        if code.startswith("over_") and code.endswith("_rate_limit"):
            return errors.IdentityRateLimited()
        mapped = _CODE_MAP.get(code)
        if mapped is not None:
            return mapped()
        if exc.status >= 500:
            return errors.IdentityProviderUnavailable()
        logger.warning("unmapped identity provider error", extra={"upstream_code": code})
        return errors.IdentityRequestRejected()
    # AuthRetryableError (network, timeout, 502-504) and AuthUnknownError (garbled replies).
    return errors.IdentityProviderUnavailable()


async def _call(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except AuthError as exc:
        mapped = map_auth_error(exc)
        if isinstance(mapped, errors.IdentityProviderUnavailable):
            logger.warning(
                "identity provider unavailable", extra={"upstream_error": type(exc).__name__}
            )
        raise mapped from None
    except (httpx.HTTPError, pydantic.ValidationError) as exc:
        # A reply we cannot parse is as good as no reply.
        logger.warning("identity provider unusable", extra={"upstream_error": type(exc).__name__})
        raise errors.IdentityProviderUnavailable() from None


def _banned_until(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def ban_duration(until: datetime | None, now: datetime) -> str:
    """GoTrue's `ban_duration` (a Go duration, or "none") for a ban lasting until `until`."""
    if until is None:
        return "none"
    return f"{max(1, int((until - now).total_seconds()))}s"


def _user(user: User) -> IdentityUser:
    return IdentityUser(
        id=uuid.UUID(user.id),
        email=user.email or None,
        email_confirmed=user.email_confirmed_at is not None,
        created_at=user.created_at,
        last_sign_in_at=user.last_sign_in_at,
        user_metadata=dict(user.user_metadata or {}),
        has_verified_factor=any(f.status == "verified" for f in user.factors or []),
        banned_until=_banned_until(user.banned_until),
    )


def assurance_levels(access_token: str, user: User | None) -> tuple[str | None, str | None]:
    """(aal, next_aal), as supabase-js's getAuthenticatorAssuranceLevel computes them.

    `aal` is the session token's claim: read, not verified, since the token came straight from
    the provider and only informs the caller (every use of it is verified). `next_aal` is aal2
    when the user has a verified factor, else the current level.
    """
    try:
        claims = jwt.decode(access_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None, None
    current = claims.get("aal") if isinstance(claims.get("aal"), str) else None
    verified = any(f.status == "verified" for f in (user.factors or [])) if user else False
    return current, "aal2" if verified else current


def _session(session: Session | None) -> IdentitySession:
    if session is None:
        raise errors.IdentityProviderUnavailable()
    aal, next_aal = assurance_levels(session.access_token, session.user)
    return IdentitySession(
        access_token=session.access_token,
        refresh_token=session.refresh_token,
        expires_in=session.expires_in,
        expires_at=session.expires_at,
        token_type=session.token_type,
        user=_user(session.user),
        aal=aal,
        next_aal=next_aal,
    )


class SupabaseIdentityProvider:
    def __init__(
        self,
        *,
        url: str,
        anon_key: str,
        service_role_key: str | None,
        timeout_seconds: float,
        forward_client_ip: bool,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.auth_url = url.rstrip("/") + "/auth/v1"
        self._anon_key = anon_key
        self._forward_ip = forward_client_ip
        # One pool for every upstream call; its timeout bounds each of them.
        self._http = http_client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )
        self._admin: AsyncGoTrueAdminAPI | None = None
        if service_role_key:
            self._admin = AsyncGoTrueAdminAPI(
                url=self.auth_url,
                headers={"apikey": service_role_key, "Authorization": f"Bearer {service_role_key}"},
                http_client=self._http,
            )

    def _client(self, ctx: CallerContext) -> AsyncGoTrueClient:
        """A fresh client for one operation: its session can never be seen by another request."""
        headers = {"apikey": self._anon_key, "Authorization": f"Bearer {self._anon_key}"}
        if self._forward_ip and ctx.ip:
            headers["X-Forwarded-For"] = ctx.ip
        return AsyncGoTrueClient(
            url=self.auth_url,
            headers=headers,
            http_client=self._http,
            persist_session=False,
            auto_refresh_token=False,
        )

    async def _client_for(self, access_token: str, ctx: CallerContext) -> AsyncGoTrueClient:
        """A fresh client holding the caller's session, for calls that need one (MFA, update)."""
        client = self._client(ctx)
        # Validates the token upstream too; the empty refresh token is never used (no refresh).
        await _call(client.set_session(access_token, ""))
        return client

    def _admin_api(self) -> AsyncGoTrueAdminAPI:
        if self._admin is None:
            raise errors.IdentityProviderNotConfigured(
                "SUPABASE_SERVICE_ROLE_KEY is required for this operation."
            )
        return self._admin

    async def sign_up(
        self,
        email: str,
        password: str,
        *,
        data: dict[str, Any],
        redirect_to: str | None,
        ctx: CallerContext,
    ) -> SignUpResult:
        options: dict[str, Any] = {"data": data}
        if redirect_to:
            options["email_redirect_to"] = redirect_to
        response = await _call(
            self._client(ctx).sign_up(
                {"email": email, "password": password, "options": options}  # type: ignore[typeddict-item]
            )
        )
        if response.user is None:
            raise errors.IdentityProviderUnavailable()
        # GoTrue answers a repeat sign-up (confirmation on) with a made-up user without identities.
        obfuscated = response.session is None and response.user.identities == []
        return SignUpResult(
            user=_user(response.user),
            session=_session(response.session) if response.session else None,
            obfuscated=obfuscated,
        )

    async def sign_in_with_password(
        self, email: str, password: str, *, ctx: CallerContext
    ) -> IdentitySession:
        response = await _call(
            self._client(ctx).sign_in_with_password({"email": email, "password": password})
        )
        return _session(response.session)

    async def send_magic_link(
        self, email: str, *, create_user: bool, redirect_to: str | None, ctx: CallerContext
    ) -> None:
        options: dict[str, Any] = {"should_create_user": create_user}
        if redirect_to:
            options["email_redirect_to"] = redirect_to
        await _call(
            self._client(ctx).sign_in_with_otp({"email": email, "options": options})  # type: ignore[typeddict-item]
        )

    async def verify_otp(
        self,
        *,
        type: OtpType,
        email: str | None,
        token: str | None,
        token_hash: str | None,
        ctx: CallerContext,
    ) -> IdentitySession:
        params: dict[str, Any] = {"type": type}
        if token_hash:
            params["token_hash"] = token_hash
        else:
            params["email"] = email
            params["token"] = token
        response = await _call(self._client(ctx).verify_otp(params))  # type: ignore[arg-type]
        return _session(response.session)

    async def resend(
        self, *, type: ResendType, email: str, redirect_to: str | None, ctx: CallerContext
    ) -> None:
        options: dict[str, Any] = {"email_redirect_to": redirect_to} if redirect_to else {}
        await _call(
            self._client(ctx).resend({"type": type, "email": email, "options": options})  # type: ignore[typeddict-item]
        )

    async def refresh(self, refresh_token: str, *, ctx: CallerContext) -> IdentitySession:
        response = await _call(self._client(ctx).refresh_session(refresh_token))
        return _session(response.session)

    async def sign_out(self, access_token: str, *, scope: LogoutScope, ctx: CallerContext) -> None:
        # The client's admin sub-API posts /logout with the user's own token: no session needed.
        await _call(self._client(ctx).admin.sign_out(access_token, scope))

    async def reset_password(
        self, email: str, *, redirect_to: str | None, ctx: CallerContext
    ) -> None:
        options: dict[str, Any] = {"redirect_to": redirect_to} if redirect_to else {}
        await _call(self._client(ctx).reset_password_for_email(email, options))  # type: ignore[arg-type]

    async def update_password(
        self, access_token: str, password: str, *, ctx: CallerContext
    ) -> IdentityUser:
        client = await self._client_for(access_token, ctx)
        response = await _call(client.update_user({"password": password}))
        return _user(response.user)

    async def get_user(self, access_token: str, *, ctx: CallerContext) -> IdentityUser:
        response = await _call(self._client(ctx).get_user(access_token))
        if response is None:
            raise errors.SessionNotFound()
        return _user(response.user)

    def oauth_authorize_url(self, provider: str, *, redirect_to: str, code_challenge: str) -> str:
        query = urlencode(
            {
                "provider": provider,
                "redirect_to": redirect_to,
                "code_challenge": code_challenge,
                "code_challenge_method": "s256",
            }
        )
        return f"{self.auth_url}/authorize?{query}"

    async def exchange_code(
        self, auth_code: str, code_verifier: str, *, ctx: CallerContext
    ) -> IdentitySession:
        response = await _call(
            self._client(ctx).exchange_code_for_session(
                {"auth_code": auth_code, "code_verifier": code_verifier}
            )
        )
        return _session(response.session)

    async def mfa_enroll(
        self, access_token: str, *, friendly_name: str | None, ctx: CallerContext
    ) -> TotpEnrollment:
        client = await self._client_for(access_token, ctx)
        params: dict[str, Any] = {"factor_type": "totp"}
        if friendly_name:
            params["friendly_name"] = friendly_name
        response = await _call(client.mfa.enroll(params))  # type: ignore[arg-type]
        if response.totp is None:
            raise errors.IdentityProviderUnavailable()
        return TotpEnrollment(
            factor_id=response.id,
            secret=response.totp.secret,
            uri=response.totp.uri,
            qr_code=response.totp.qr_code,
        )

    async def mfa_challenge(
        self, access_token: str, factor_id: str, *, ctx: CallerContext
    ) -> MfaChallenge:
        client = await self._client_for(access_token, ctx)
        response = await _call(client.mfa.challenge({"factor_id": factor_id}))
        return MfaChallenge(id=response.id, expires_at=response.expires_at)

    async def mfa_verify(
        self,
        access_token: str,
        factor_id: str,
        *,
        challenge_id: str,
        code: str,
        ctx: CallerContext,
    ) -> IdentitySession:
        client = await self._client_for(access_token, ctx)
        response = await _call(
            client.mfa.verify({"factor_id": factor_id, "challenge_id": challenge_id, "code": code})
        )
        aal, next_aal = assurance_levels(response.access_token, response.user)
        return IdentitySession(
            access_token=response.access_token,
            refresh_token=response.refresh_token,
            expires_in=response.expires_in,
            expires_at=None,
            token_type=response.token_type,
            user=_user(response.user),
            aal=aal,
            next_aal=next_aal,
        )

    async def mfa_list_factors(self, access_token: str, *, ctx: CallerContext) -> list[MfaFactor]:
        response = await _call(self._client(ctx).get_user(access_token))
        if response is None:
            raise errors.SessionNotFound()
        return [
            MfaFactor(
                id=f.id,
                factor_type=str(f.factor_type),
                status=f.status,
                friendly_name=f.friendly_name,
                created_at=f.created_at,
            )
            for f in response.user.factors or []
        ]

    async def mfa_unenroll(self, access_token: str, factor_id: str, *, ctx: CallerContext) -> None:
        client = await self._client_for(access_token, ctx)
        await _call(client.mfa.unenroll({"factor_id": factor_id}))

    async def admin_get_user(self, user_id: uuid.UUID) -> IdentityUser | None:
        try:
            response = await _call(self._admin_api().get_user_by_id(str(user_id)))
        except errors.SessionNotFound:  # GoTrue's user_not_found
            return None
        return _user(response.user)

    async def admin_ensure_user(self, email: str, password: str) -> uuid.UUID:
        admin = self._admin_api()
        try:
            response = await _call(
                admin.create_user({"email": email, "password": password, "email_confirm": True})
            )
            return uuid.UUID(response.user.id)
        except errors.UserAlreadyExists:
            pass
        wanted = email.strip().lower()
        page = 1
        while True:
            users = await _call(admin.list_users(page=page, per_page=200))
            for user in users:
                if (user.email or "").lower() == wanted:
                    return uuid.UUID(user.id)
            if len(users) < 200:
                raise errors.IdentityRequestRejected("The existing user could not be found.")
            page += 1

    async def admin_delete_user(self, user_id: uuid.UUID) -> None:
        try:
            await _call(self._admin_api().delete_user(str(user_id)))
        except errors.SessionNotFound:  # already gone
            return

    async def admin_ban_user(self, user_id: uuid.UUID, until: datetime | None) -> None:
        duration = ban_duration(until, datetime.now(UTC))
        await _call(self._admin_api().update_user_by_id(str(user_id), {"ban_duration": duration}))

    async def close(self) -> None:
        await self._http.aclose()
