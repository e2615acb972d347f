"""Request and response bodies of the app-client admin API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

ClientName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Audience = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class ClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ClientName
    description: str | None = Field(default=None, max_length=2000)
    allowed_audiences: list[Audience] = Field(default_factory=list, max_length=50)
    is_active: bool = True


class ClientUpdate(BaseModel):
    """Full replacement (PUT): omitted optional fields take their defaults."""

    model_config = ConfigDict(extra="forbid")

    name: ClientName
    description: str | None = Field(default=None, max_length=2000)
    allowed_audiences: list[Audience] = Field(default_factory=list, max_length=50)
    is_active: bool = True


class RoleRef(BaseModel):
    id: uuid.UUID
    name: str


class ClientRead(BaseModel):
    client_id: uuid.UUID
    name: str
    description: str | None
    allowed_audiences: list[str]
    is_active: bool
    roles: list[RoleRef]
    secret_rotation_grace_until: datetime | None = Field(
        description="Until when the previous secret is still accepted, if a rotation is pending."
    )
    created_at: datetime
    updated_at: datetime


class ClientCreated(ClientRead):
    client_secret: str = Field(description="Shown only once. Store it now.")


class ClientPage(BaseModel):
    items: list[ClientRead]
    total: int
    limit: int
    offset: int


class SecretRotated(BaseModel):
    client_id: uuid.UUID
    client_secret: str = Field(description="Shown only once. Store it now.")
    previous_secret_expires_at: datetime
