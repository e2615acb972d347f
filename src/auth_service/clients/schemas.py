"""Request and response bodies of the app-client admin API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

# What the schema promises must be what we accept: no NUL (PostgreSQL cannot store it), and
# at least one character that survives the whitespace strip (Python's and JSON Schema's
# notions of whitespace differ, hence the explicit class).
_VISIBLE = r"^[^\x00]*[^\s\x00\x1c-\x1f\x85][^\x00]*$"
ClientName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=_VISIBLE)
]
Audience = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255, pattern=_VISIBLE)
]
Description = Annotated[str, StringConstraints(max_length=2000, pattern=r"^[^\x00]*$")]


class ClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ClientName
    description: Description | None = None
    allowed_audiences: list[Audience] = Field(default_factory=list, max_length=50)
    is_active: StrictBool = True  # "false" or 0 is a type error, not a silent coercion


class ClientUpdate(BaseModel):
    """Full replacement (PUT): omitted optional fields take their defaults."""

    model_config = ConfigDict(extra="forbid")

    name: ClientName
    description: Description | None = None
    allowed_audiences: list[Audience] = Field(default_factory=list, max_length=50)
    is_active: StrictBool = True  # "false" or 0 is a type error, not a silent coercion


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
