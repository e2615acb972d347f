from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from auth_service.core.db import Base


class Revocation(Base):
    """One denylist entry (a revoked jti, a session, a user's cutoff), kept until it expires.

    `key` is the cache key itself (`revoked:jti:<jti>`, `revoked:user:<id>`, ...), so the cache
    is rebuilt from this table without translation.
    """

    __tablename__ = "revocations"
    __table_args__ = (Index("ix_revocations_expires_at", "expires_at"),)

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
