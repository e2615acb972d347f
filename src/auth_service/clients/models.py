from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    String,
    Text,
    false,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from auth_service.core.db import Base
from auth_service.core.models import TimestampMixin, assigned_at_column


class AppClient(TimestampMixin, Base):
    """A backend service that authenticates with client credentials."""

    __tablename__ = "app_clients"
    __table_args__ = (
        CheckConstraint(
            "token_endpoint_auth_method IN ('client_secret_basic', 'client_secret_post',"
            " 'client_secret_jwt', 'private_key_jwt')",
            name="token_endpoint_auth_method",
        ),
        # Key-only clients have no secret; secret clients have no keys (migration 20261202_0007).
        CheckConstraint(
            "CASE token_endpoint_auth_method"
            " WHEN 'private_key_jwt' THEN client_secret_hash IS NULL"
            " AND (jwks IS NULL) <> (jwks_uri IS NULL)"
            " WHEN 'client_secret_jwt' THEN client_secret_hash IS NOT NULL"
            " AND client_secret_encrypted IS NOT NULL AND jwks IS NULL AND jwks_uri IS NULL"
            " ELSE client_secret_hash IS NOT NULL AND jwks IS NULL AND jwks_uri IS NULL END",
            name="credentials_match_method",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=func.gen_random_uuid())
    client_name: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    client_secret_hash: Mapped[str | None] = mapped_column(String(128))
    # The secret replaced by the last rotation stays valid until this instant (grace period).
    previous_secret_hash: Mapped[str | None] = mapped_column(String(128))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # RFC 8707 resource indicators this client may request tokens for.
    allowed_audiences: Mapped[list[str]] = mapped_column(
        ARRAY(String(255)), server_default=text("'{}'::varchar[]"), nullable=False
    )
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=true(), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    token_endpoint_auth_method: Mapped[str] = mapped_column(
        String(32), server_default="client_secret_basic", nullable=False
    )
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    jwks_uri: Mapped[str | None] = mapped_column(Text)
    # client_secret_jwt only: the raw secret, AES-GCM encrypted (see docs/client-secrets.md).
    client_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    dpop_bound_access_tokens: Mapped[bool] = mapped_column(
        Boolean, server_default=false(), nullable=False
    )


class AppClientRole(Base):
    __tablename__ = "app_client_roles"

    client_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("app_clients.id", ondelete="CASCADE"), primary_key=True
    )
    role_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    assigned_at: Mapped[datetime] = assigned_at_column()
