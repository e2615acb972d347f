from __future__ import annotations

import uuid

from sqlalchemy import Boolean, String, true
from sqlalchemy.orm import Mapped, mapped_column

from auth_service.core.db import Base
from auth_service.core.models import TimestampMixin


class Profile(TimestampMixin, Base):
    """Our side of a human user; `user_id` is the Supabase Auth user id."""

    __tablename__ = "profiles"

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    username: Mapped[str | None] = mapped_column(String(50), unique=True)
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=true(), nullable=False)
