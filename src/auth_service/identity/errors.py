"""Errors an identity provider raises, each with the stable code our clients switch on.

Adapters translate their backend's error codes into these; the messages are ours, so nothing
the upstream says (or any key) reaches a response.
"""

from __future__ import annotations

from typing import Any

from auth_service.core.errors import (
    AppError,
    Conflict,
    Forbidden,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
)

# GoTrue does not send Retry-After on its 429s; this is the hint we give instead.
UPSTREAM_RETRY_AFTER_SECONDS = 60


class UserAlreadyExists(Conflict):
    code = "user_already_exists"
    message = "An account with this email already exists."


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    message = "The email or password is incorrect."


class EmailNotConfirmed(Forbidden):
    code = "email_not_confirmed"
    message = "The email address has not been confirmed yet."


class WeakPassword(ValidationFailed):
    code = "weak_password"
    message = "The password is too weak."

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(details={"reasons": reasons})


class UserBanned(Forbidden):
    """GoTrue's `user_banned`: the account is banned (`banned_until` in the future)."""

    code = "user_banned"
    message = "This account is suspended."


class OtpExpired(Unauthorized):
    code = "otp_expired"
    message = "The code or link is invalid or has expired."


class InvalidRefreshToken(Unauthorized):
    code = "invalid_refresh_token"
    message = "The refresh token is invalid, already used or revoked."


class RefreshTokenReused(InvalidRefreshToken):
    """GoTrue's `refresh_token_already_used`: the session was revoked upstream (a stolen
    token replayed); answered like any invalid refresh token, but its session is cut off."""


class SessionNotFound(Unauthorized):
    code = "invalid_token"
    message = "The session is invalid, expired or revoked."


class InsufficientAal(Forbidden):
    code = "insufficient_aal"
    message = "This action needs a second factor (aal2 session)."


class MfaVerificationFailed(Unauthorized):
    code = "mfa_verification_failed"
    message = "The MFA code is not valid."


class MfaFactorNotFound(AppError):
    status_code = 404
    code = "mfa_factor_not_found"
    message = "The MFA factor or challenge was not found."


class InvalidOAuthCode(AppError):
    status_code = 400
    code = "invalid_oauth_code"
    message = "The authorization code is invalid, expired or does not match the verifier."


class OtpSignupsDisabled(AppError):
    """Upstream refused to create an account; callers answer as if the email exists."""

    status_code = 400
    code = "otp_disabled"
    message = "Sign-ups through this method are disabled."


class IdentityRateLimited(RateLimited):
    code = "rate_limited"
    message = "Too many attempts. Try again later."

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": str(UPSTREAM_RETRY_AFTER_SECONDS)})
        super().__init__(**kwargs)


class IdentityRequestRejected(AppError):
    """An upstream 4xx with a code we do not map; deliberately vague."""

    status_code = 400
    code = "identity_request_rejected"
    message = "The identity provider rejected the request."


class IdentityProviderUnavailable(ServiceUnavailable):
    code = "identity_provider_unavailable"
    message = "The identity provider is unavailable. Try again later."


class IdentityProviderNotConfigured(ServiceUnavailable):
    code = "identity_provider_not_configured"
    message = (
        "Human sign-in is not configured on this service: set SUPABASE_URL and"
        " SUPABASE_ANON_KEY (see docs/supabase.md, or the README's local Supabase section)."
    )
