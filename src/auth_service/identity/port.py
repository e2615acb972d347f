"""The identity-provider port: what the users domain needs from a human-identity backend.

Endpoints and services talk to an `IdentityProvider`; the Supabase adapter is the first
implementation. Nothing above this port imports `supabase`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

OtpType = Literal["signup", "magiclink", "recovery", "invite", "email_change", "email"]
ResendType = Literal["signup", "email_change"]
LogoutScope = Literal["local", "global", "others"]


@dataclass(frozen=True, slots=True)
class CallerContext:
    """Facts about the end user's request that the provider may forward (e.g. for per-IP limits)."""

    ip: str | None = None


@dataclass(frozen=True, slots=True)
class IdentityUser:
    id: uuid.UUID
    email: str | None
    email_confirmed: bool = False
    created_at: datetime | None = None
    last_sign_in_at: datetime | None = None
    user_metadata: dict[str, Any] = field(default_factory=dict)
    # At least one verified MFA factor: admin endpoints then want an aal2 session (issue 9).
    has_verified_factor: bool = False
    # Set while the user is banned (GoTrue's `banned_until`); a past time means not banned.
    banned_until: datetime | None = None

    def banned(self, now: datetime) -> bool:
        return self.banned_until is not None and self.banned_until > now


@dataclass(frozen=True, slots=True)
class IdentitySession:
    access_token: str
    refresh_token: str
    expires_in: int
    expires_at: int | None
    user: IdentityUser
    token_type: str = "bearer"  # noqa: S105 - a scheme name, not a secret
    # Authenticator assurance: the session's level, and the level the user can reach (aal2
    # once a factor is verified). aal1 with next_aal aal2 means: step up through MFA.
    aal: str | None = None
    next_aal: str | None = None


@dataclass(frozen=True, slots=True)
class SignUpResult:
    """`session` is None when the provider requires email confirmation first.

    `obfuscated` is True when the provider answered a repeat sign-up with a stand-in user (so as
    not to reveal that the email exists): there is no real user to create a profile for.
    """

    user: IdentityUser
    session: IdentitySession | None
    obfuscated: bool = False


@dataclass(frozen=True, slots=True)
class TotpEnrollment:
    factor_id: str
    secret: str
    uri: str
    qr_code: str


@dataclass(frozen=True, slots=True)
class MfaChallenge:
    id: str
    expires_at: int | None


@dataclass(frozen=True, slots=True)
class MfaFactor:
    id: str
    factor_type: str
    status: str
    friendly_name: str | None
    created_at: datetime | None


class IdentityProvider(Protocol):
    """Human identity operations. Implementations raise `identity.errors` exceptions only."""

    async def sign_up(
        self,
        email: str,
        password: str,
        *,
        data: dict[str, Any],
        redirect_to: str | None,
        ctx: CallerContext,
    ) -> SignUpResult: ...

    async def sign_in_with_password(
        self, email: str, password: str, *, ctx: CallerContext
    ) -> IdentitySession: ...

    async def send_magic_link(
        self, email: str, *, create_user: bool, redirect_to: str | None, ctx: CallerContext
    ) -> None:
        """Raises `OtpSignupsDisabled` for an unknown email when `create_user` is False."""
        ...

    async def verify_otp(
        self,
        *,
        type: OtpType,
        email: str | None,
        token: str | None,
        token_hash: str | None,
        ctx: CallerContext,
    ) -> IdentitySession: ...

    async def resend(
        self, *, type: ResendType, email: str, redirect_to: str | None, ctx: CallerContext
    ) -> None: ...

    async def refresh(self, refresh_token: str, *, ctx: CallerContext) -> IdentitySession: ...

    async def sign_out(
        self, access_token: str, *, scope: LogoutScope, ctx: CallerContext
    ) -> None: ...

    async def reset_password(
        self, email: str, *, redirect_to: str | None, ctx: CallerContext
    ) -> None: ...

    async def update_password(
        self, access_token: str, password: str, *, ctx: CallerContext
    ) -> IdentityUser: ...

    async def get_user(self, access_token: str, *, ctx: CallerContext) -> IdentityUser: ...

    def oauth_authorize_url(self, provider: str, *, redirect_to: str, code_challenge: str) -> str:
        """The provider's authorize URL for the PKCE (S256) flow; no network call."""
        ...

    async def exchange_code(
        self, auth_code: str, code_verifier: str, *, ctx: CallerContext
    ) -> IdentitySession: ...

    async def mfa_enroll(
        self, access_token: str, *, friendly_name: str | None, ctx: CallerContext
    ) -> TotpEnrollment: ...

    async def mfa_challenge(
        self, access_token: str, factor_id: str, *, ctx: CallerContext
    ) -> MfaChallenge: ...

    async def mfa_verify(
        self,
        access_token: str,
        factor_id: str,
        *,
        challenge_id: str,
        code: str,
        ctx: CallerContext,
    ) -> IdentitySession: ...

    async def mfa_list_factors(
        self, access_token: str, *, ctx: CallerContext
    ) -> list[MfaFactor]: ...

    async def mfa_unenroll(
        self, access_token: str, factor_id: str, *, ctx: CallerContext
    ) -> None: ...

    # --- admin (service role; never signs in) ------------------------------------------
    async def admin_get_user(self, user_id: uuid.UUID) -> IdentityUser | None: ...

    async def admin_ensure_user(self, email: str, password: str) -> uuid.UUID:
        """Create a confirmed user, or return the id of the existing user with that email."""
        ...

    async def admin_delete_user(self, user_id: uuid.UUID) -> None:
        """Delete the user; a user that is already gone is not an error."""
        ...

    async def admin_ban_user(self, user_id: uuid.UUID, until: datetime | None) -> None:
        """Ban the user until `until` (None lifts the ban): sign-in, refresh and OTP
        verification are refused with `UserBanned` meanwhile. The user must exist."""
        ...

    async def close(self) -> None: ...
