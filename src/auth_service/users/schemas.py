"""Request and response models of the /auth/users and /auth/admin/users endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, EmailStr, Field, SecretStr, model_validator

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
