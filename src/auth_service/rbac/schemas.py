"""Request and response bodies of the RBAC admin endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, computed_field

from auth_service.rbac.constants import (
    CORE_PERMISSIONS,
    CORE_ROLES,
    PERMISSION_NAME_PATTERN,
    PERMISSION_NAME_RULE,
    ROLE_NAME_PATTERN,
    ROLE_NAME_RULE,
)

# The naming rules are checked by the service (see names.py), so that a bad name answers 422
# with the rule itself as the message; the schema only documents them.
PermissionName = Annotated[
    str,
    Field(
        description=PERMISSION_NAME_RULE,
        examples=["invoices:read"],
        json_schema_extra={"pattern": PERMISSION_NAME_PATTERN},
    ),
]
RoleName = Annotated[
    str,
    Field(
        description=ROLE_NAME_RULE,
        examples=["billing-admin"],
        json_schema_extra={"pattern": ROLE_NAME_PATTERN},
    ),
]
# No NUL: PostgreSQL cannot store it, and the schema should say what is refused.
Description = Annotated[str | None, Field(default=None, max_length=1000, pattern=r"^[^\x00]*$")]


class ErrorBody(BaseModel):
    """The error body every non-OAuth endpoint answers with."""

    error: str = Field(examples=["role_not_found"])
    message: str
    request_id: str | None = None
    details: Any = None


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description="Matching rows in all pages.")
    limit: int
    offset: int


# --- roles -------------------------------------------------------------------------------


class RoleWrite(BaseModel):
    """Create a role, or replace its name and description (PUT)."""

    model_config = ConfigDict(extra="forbid")

    name: RoleName
    description: Description


class RoleRef(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str


class RoleRead(RoleRef):
    description: str | None
    created_at: datetime
    updated_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def is_core(self) -> bool:
        """Core roles are seeded at startup and cannot be renamed or deleted."""
        return self.name in CORE_ROLES


# --- permissions -------------------------------------------------------------------------


class PermissionWrite(BaseModel):
    """Create a permission, or replace its name and description (PUT)."""

    model_config = ConfigDict(extra="forbid")

    name: PermissionName
    description: Description


class PermissionRef(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str


class PermissionRead(PermissionRef):
    description: str | None
    created_at: datetime
    updated_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def is_core(self) -> bool:
        """Core permissions are seeded at startup and cannot be renamed or deleted."""
        return self.name in CORE_PERMISSIONS


# --- assignments -------------------------------------------------------------------------


class RolePermissionAssignment(BaseModel):
    """A permission granted to a role. Granting again answers 200 with this same body."""

    role: RoleRef
    permission: PermissionRef
    assigned_at: datetime


class GrantedPermission(PermissionRef):
    description: str | None
    assigned_at: datetime


class RolePermissions(BaseModel):
    role: RoleRef
    permissions: list[GrantedPermission]


class UserRoleAssignment(BaseModel):
    """A role assigned to a user. Assigning again answers 200 with this same body."""

    user_id: uuid.UUID = Field(description="The Supabase Auth user id.")
    role: RoleRef
    assigned_at: datetime


class AssignedRole(RoleRef):
    description: str | None
    assigned_at: datetime


class UserRoles(BaseModel):
    user_id: uuid.UUID
    roles: list[AssignedRole]
