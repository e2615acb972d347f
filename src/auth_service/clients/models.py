from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, String, Text, func, text, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from auth_service.core.db import Base
from auth_service.core.models import TimestampMixin, assigned_at_column


class AppClient(TimestampMixin, Base):
    """A backend service that authenticates with client credentials."""

    __tablename__ = "app_clients"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=func.gen_random_uuid())
    client_name: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    client_secret_hash: Mapped[str] = mapped_column(String(128), nullable=False)
    # The secret replaced by the last rotation stays valid until this instant (grace period).
    previous_secret_hash: Mapped[str | None] = mapped_column(String(128))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # RFC 8707 resource indicators this client may request tokens for.
    allowed_audiences: Mapped[list[str]] = mapped_column(
        ARRAY(String(255)), server_default=text("'{}'::varchar[]"), nullable=False
    )
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=true(), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)


class AppClientRole(Base):
    __tablename__ = "app_client_roles"

    client_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("app_clients.id", ondelete="CASCADE"), primary_key=True
    )
    role_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    assigned_at: Mapped[datetime] = assigned_at_column()
