"""Request and response models of the /auth/users and /auth/admin/users endpoints."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    SecretStr,
    model_validator,
)

Username = Field(default=None, min_length=3, max_length=50, pattern=r"^[A-Za-z0-9_.-]+$")
Password = Field(min_length=1, max_length=256)
# No NUL: PostgreSQL cannot store it, and the schema should say what is refused.
PersonName = Field(default=None, max_length=100, pattern=r"^[^\x00]*$")
RedirectTo = Field(default=None, max_length=2048, description="Checked against the allow-list.")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RegisterRequest(_In):
    email: EmailStr
    password: SecretStr = Password
    username: str | None = Username
    first_name: str | None = PersonName
    last_name: str | None = PersonName
    redirect_to: str | None = RedirectTo


class LoginRequest(_In):
    email: EmailStr
    password: SecretStr = Password


class EmailRequest(_In):
    email: EmailStr
    redirect_to: str | None = RedirectTo


class VerifyRequest(_In):
    type: Literal["signup", "magiclink", "recovery", "invite", "email_change", "email"]
    token_hash: str | None = Field(default=None, max_length=256)
    email: EmailStr | None = None
    token: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if not self.token_hash and not (self.email and self.token):
            raise ValueError("give either token_hash, or email and token")
        return self


class ResendRequest(_In):
    type: Literal["signup", "email_change"] = "signup"
    email: EmailStr
    redirect_to: str | None = RedirectTo


class RefreshRequest(_In):
    refresh_token: str = Field(min_length=1, max_length=1024)


class PasswordUpdateRequest(_In):
    password: SecretStr = Password


class UserOut(BaseModel):
    id: uuid.UUID
    email: str | None
    email_confirmed: bool


class SessionResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105 - a scheme name
    expires_in: int
    expires_at: int | None
    user: UserOut
    aal: str | None = Field(
        default=None, description="This session's assurance level: `aal1` or `aal2`."
    )
    next_aal: str | None = Field(
        default=None,
        description="The level the user can reach. `aal: aal1` with `next_aal: aal2` means a"
        " verified MFA factor requires step-up: call `/auth/users/mfa/challenge` and"
        " `/auth/users/mfa/verify` for an aal2 session.",
    )


class RegisterResponse(BaseModel):
    status: Literal["registered", "confirmation_required"]
    user: UserOut | None = Field(
        description="Absent while confirmation is pending (so it reveals nothing about the email)."
    )
    session: SessionResponse | None


class AcceptedResponse(BaseModel):
    message: str


class ProfileOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user_id: uuid.UUID
    username: str | None
    first_name: str | None
    last_name: str | None
    is_active: bool
    created_at: datetime
    updated_at: datetime


class MeResponse(ProfileOut):
    email: str | None


class ProfileUpdate(_In):
    username: str | None = Username
    first_name: str | None = PersonName
    last_name: str | None = PersonName


class MfaEnrollRequest(_In):
    friendly_name: str | None = Field(default=None, max_length=100)


class TotpDetails(BaseModel):
    secret: str
    uri: str
    qr_code: str


class MfaEnrollResponse(BaseModel):
    factor_id: str
    type: Literal["totp"] = "totp"
    totp: TotpDetails


class MfaChallengeRequest(_In):
    factor_id: str = Field(min_length=1, max_length=64)


class MfaChallengeResponse(BaseModel):
    challenge_id: str
    expires_at: int | None


class MfaVerifyRequest(_In):
    factor_id: str = Field(min_length=1, max_length=64)
    challenge_id: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=6, max_length=10, pattern=r"^[0-9]+$")


class MfaFactorOut(BaseModel):
    id: str
    factor_type: str
    status: str
    friendly_name: str | None
    created_at: datetime | None


class AdminUserResponse(BaseModel):
    user_id: uuid.UUID
    email: str | None
    email_confirmed: bool | None
    profile: ProfileOut | None
    roles: list[str]
    banned_until: datetime | None = Field(
        default=None, description="Set while the user is banned (GoTrue's `banned_until`)."
    )


# Go's time.ParseDuration (unsigned), which GoTrue applies to `ban_duration`: "24h", "1h30m".
_DURATION_PART = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|ms|s|m|h)"
BAN_DURATION_PATTERN = rf"^(?:none|(?:{_DURATION_PART})+)$"
_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
# The longest Go duration (int64 nanoseconds, about 292 years): longer bans are capped to it.
MAX_BAN_SECONDS = (2**63 - 1) // 10**9


def parse_ban_duration(text: str) -> timedelta | None:
    """GoTrue's `ban_duration` (matching BAN_DURATION_PATTERN): how long the ban lasts, or
    None to lift it ("none", or a zero duration, as GoTrue's User.Ban)."""
    if text == "none":
        return None
    seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text))
    return timedelta(seconds=min(seconds, MAX_BAN_SECONDS)) if seconds > 0 else None


class BanRequest(_In):
    duration: str = Field(
        min_length=1,
        max_length=64,
        pattern=BAN_DURATION_PATTERN,
        description=(
            'GoTrue\'s `ban_duration`: a Go duration ("24h", "1h30m", "876000h" for'
            ' permanent; capped at about 292 years) or "none" (or a zero duration) to lift'
            " the ban."
        ),
        examples=["24h"],
    )

    def lasts(self) -> timedelta | None:
        return parse_ban_duration(self.duration)
