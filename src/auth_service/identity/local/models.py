"""Tables of the local identity provider: our own `auth.users`, sessions, tokens and factors.

Emails are stored lower-cased (a CHECK enforces it), so the unique constraint is
case-insensitive. Secrets are never stored in the clear: refresh and email tokens as SHA-256
digests, TOTP secrets encrypted like the signing keys, passwords as argon2id (or imported bcrypt).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from auth_service.core.db import Base
from auth_service.core.models import TimestampMixin


def _created() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


def _user_fk() -> Mapped[uuid.UUID]:
    return mapped_column(ForeignKey("local_users.id", ondelete="CASCADE"), nullable=False)


class LocalUser(TimestampMixin, Base):
    __tablename__ = "local_users"
    __table_args__ = (CheckConstraint("email = lower(email)", name="email_lower"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=func.gen_random_uuid())
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    encrypted_password: Mapped[str | None] = mapped_column(Text)
    email_confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_sign_in_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    banned_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    user_metadata: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb"), nullable=False
    )
    app_metadata: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb"), nullable=False
    )


class LocalSession(TimestampMixin, Base):
    __tablename__ = "local_sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=func.gen_random_uuid())
    user_id: Mapped[uuid.UUID] = _user_fk()
    aal: Mapped[str] = mapped_column(String(8), server_default="aal1", nullable=False)
    amr: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb"), nullable=False
    )


Index("ix_auth_service_data_local_sessions_user_id", LocalSession.user_id)


class LocalRefreshToken(TimestampMixin, Base):
    __tablename__ = "local_refresh_tokens"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("local_sessions.id", ondelete="CASCADE"), nullable=False
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    parent_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("local_refresh_tokens.id", ondelete="SET NULL")
    )
    revoked: Mapped[bool] = mapped_column(Boolean, server_default=false(), nullable=False)


Index("ix_auth_service_data_local_refresh_tokens_session_id", LocalRefreshToken.session_id)


class LocalEmailToken(Base):
    """A one-time email token: the link's token_hash and the 6-digit code, both digested."""

    __tablename__ = "local_email_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=func.gen_random_uuid())
    user_id: Mapped[uuid.UUID] = _user_fk()
    type: Mapped[str] = mapped_column(String(16), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    otp_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0", nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()


Index("ix_auth_service_data_local_email_tokens_user_id", LocalEmailToken.user_id)


class DevMailboxMessage(Base):
    """Mail "sent" without SMTP: kept here for `auth-service mail list` and GET /dev/mailbox."""

    __tablename__ = "dev_mailbox"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    to_address: Mapped[str] = mapped_column(String(320), nullable=False)
    subject: Mapped[str] = mapped_column(Text, nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    meta: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb"), nullable=False
    )
    created_at: Mapped[datetime] = _created()


class LocalMfaFactor(TimestampMixin, Base):
    __tablename__ = "local_mfa_factors"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=func.gen_random_uuid())
    user_id: Mapped[uuid.UUID] = _user_fk()
    friendly_name: Mapped[str | None] = mapped_column(String(128))
    factor_type: Mapped[str] = mapped_column(String(16), server_default="totp", nullable=False)
    status: Mapped[str] = mapped_column(String(16), server_default="unverified", nullable=False)
    secret_encrypted: Mapped[str] = mapped_column(Text, nullable=False)


Index("ix_auth_service_data_local_mfa_factors_user_id", LocalMfaFactor.user_id)


class LocalMfaChallenge(Base):
    __tablename__ = "local_mfa_challenges"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=func.gen_random_uuid())
    factor_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("local_mfa_factors.id", ondelete="CASCADE"), nullable=False
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()


class LocalMfaUsedCode(Base):
    """A TOTP time step already answered for a factor: codes are single-use."""

    __tablename__ = "local_mfa_used_codes"

    factor_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("local_mfa_factors.id", ondelete="CASCADE"), primary_key=True
    )
    counter: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[datetime] = _created()


class LocalIdentity(Base):
    """An upstream (OpenID Connect) account linked to a local user."""

    __tablename__ = "local_identities"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[uuid.UUID] = _user_fk()
    email: Mapped[str | None] = mapped_column(String(320))
    claims: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb"), nullable=False
    )
    created_at: Mapped[datetime] = _created()


Index("ix_auth_service_data_local_identities_user_id", LocalIdentity.user_id)


class LocalOAuthFlow(Base):
    """One social sign-in in flight: upstream state/nonce/verifier, then our one-time code."""

    __tablename__ = "local_oauth_flows"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=func.gen_random_uuid())
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    state: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    nonce: Mapped[str] = mapped_column(String(64), nullable=False)
    upstream_verifier: Mapped[str] = mapped_column(String(128), nullable=False)
    code_challenge: Mapped[str] = mapped_column(String(128), nullable=False)
    redirect_to: Mapped[str] = mapped_column(Text, nullable=False)
    auth_code_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("local_users.id", ondelete="CASCADE")
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_at: Mapped[datetime] = _created()
