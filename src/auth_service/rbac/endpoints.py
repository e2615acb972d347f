"""RBAC admin endpoints: roles, permissions and their assignments under /auth/admin.

Every route declares the permission it needs (`permission_doc`, shown in OpenAPI as text and
as `x-required-permissions`) and checks it against the database on each call.
Assigning something that is already assigned answers 200 with the same body (idempotent).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status

from auth_service.core.db import DbSession
from auth_service.core.pagination import Limit, Offset
from auth_service.core.ratelimit import DefaultRateLimit
from auth_service.rbac.authorization import (
    CurrentPrincipal,
    Principal,
    permission_doc,
    require_permission,
)
from auth_service.rbac.schemas import (
    ErrorBody,
    Page,
    PermissionRead,
    PermissionWrite,
    RolePermissionAssignment,
    RolePermissions,
    RoleRead,
    RoleWrite,
    UserRoleAssignment,
    UserRoles,
)
from auth_service.rbac.service import RbacService

router = APIRouter(prefix="/auth/admin", dependencies=[DefaultRateLimit])


def get_rbac_service(
    request: Request, session: DbSession, principal: CurrentPrincipal
) -> RbacService:
    # None when Supabase isn't configured: then only existing profiles count as users.
    provider = getattr(request.app.state, "identity_provider", None)
    return RbacService(session, provider, actor=principal.actor)


Rbac = Annotated[RbacService, Depends(get_rbac_service)]
RolesReader = Annotated[Principal, Depends(require_permission("roles:read"))]
RolesWriter = Annotated[Principal, Depends(require_permission("roles:write"))]
PermissionsReader = Annotated[Principal, Depends(require_permission("permissions:read"))]
PermissionsWriter = Annotated[Principal, Depends(require_permission("permissions:write"))]
UsersReader = Annotated[Principal, Depends(require_permission("users:read"))]
UsersWriter = Annotated[Principal, Depends(require_permission("users:write"))]

NameFilter = Annotated[
    str | None,
    Query(min_length=1, max_length=128, description="Case-insensitive substring of the name."),
]
Force = Annotated[
    bool, Query(description="Delete even while assigned; the assignments are removed with it.")
]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        401: "Missing, invalid or expired bearer token.",
        403: "`insufficient_permissions`: the token's subject lacks the required permission."
        " `privilege_ceiling`: the change would hand out, or act on, permissions or roles the"
        " caller does not hold itself; `details` names them (see docs/rbac.md)."
        " `mfa_required`: a human admin must step up to aal2 first.",
        404: "Not found (see `error` for which).",
        409: "Conflict (see `error` and `message`); `core_grant_protected` for the admin"
        " role's core permissions, `last_admin` when the last holder of admin would lose it.",
        422: "Malformed request; `details` says which field and why.",
    }
    return {code: {"model": ErrorBody, "description": text[code]} for code in (401, 403, *codes)}


# --- roles -------------------------------------------------------------------------------


@router.get(
    "/roles",
    response_model=Page[RoleRead],
    tags=["rbac: roles"],
    summary="List roles",
    responses=_errors(422),
    **permission_doc("roles:read", description="Roles ordered by name, paginated."),
)
async def list_roles(
    principal: RolesReader,
    rbac: Rbac,
    name: NameFilter = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[RoleRead]:
    rows, total = await rbac.list_roles(name=name, limit=limit, offset=offset)
    items = [RoleRead.model_validate(row) for row in rows]
    return Page[RoleRead](items=items, total=total, limit=limit, offset=offset)


@router.post(
    "/roles",
    response_model=RoleRead,
    status_code=status.HTTP_201_CREATED,
    tags=["rbac: roles"],
    summary="Create a role",
    responses=_errors(409, 422),
    **permission_doc("roles:write", description="409 `role_exists` when the name is taken."),
)
async def create_role(principal: RolesWriter, rbac: Rbac, body: RoleWrite) -> RoleRead:
    return RoleRead.model_validate(await rbac.create_role(body))


@router.get(
    "/roles/{role_id}",
    response_model=RoleRead,
    tags=["rbac: roles"],
    summary="Get a role",
    responses=_errors(404, 422),
    **permission_doc("roles:read"),
)
async def get_role(principal: RolesReader, rbac: Rbac, role_id: uuid.UUID) -> RoleRead:
    return RoleRead.model_validate(await rbac.get_role(role_id))


@router.put(
    "/roles/{role_id}",
    response_model=RoleRead,
    tags=["rbac: roles"],
    summary="Replace a role's name and description",
    responses=_errors(404, 409, 422),
    **permission_doc(
        "roles:write",
        description="409 `role_exists` when the new name is taken; core roles keep their name"
        " (409 `core_role_protected`).",
    ),
)
async def update_role(
    principal: RolesWriter, rbac: Rbac, role_id: uuid.UUID, body: RoleWrite
) -> RoleRead:
    return RoleRead.model_validate(await rbac.update_role(role_id, body))


@router.delete(
    "/roles/{role_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["rbac: roles"],
    summary="Delete a role",
    responses=_errors(404, 409, 422),
    **permission_doc(
        "roles:write",
        description="A role still assigned to users or clients is refused with 409 `role_in_use`"
        " unless `force=true`. Core roles cannot be deleted (409 `core_role_protected`).",
    ),
)
async def delete_role(
    principal: RolesWriter, rbac: Rbac, role_id: uuid.UUID, force: Force = False
) -> None:
    await rbac.delete_role(role_id, force=force)


# --- permissions -------------------------------------------------------------------------


@router.get(
    "/permissions",
    response_model=Page[PermissionRead],
    tags=["rbac: permissions"],
    summary="List permissions",
    responses=_errors(422),
    **permission_doc("permissions:read", description="Permissions ordered by name, paginated."),
)
async def list_permissions(
    principal: PermissionsReader,
    rbac: Rbac,
    name: NameFilter = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[PermissionRead]:
    rows, total = await rbac.list_permissions(name=name, limit=limit, offset=offset)
    items = [PermissionRead.model_validate(row) for row in rows]
    return Page[PermissionRead](items=items, total=total, limit=limit, offset=offset)


@router.post(
    "/permissions",
    response_model=PermissionRead,
    status_code=status.HTTP_201_CREATED,
    tags=["rbac: permissions"],
    summary="Create a permission",
    responses=_errors(409, 422),
    **permission_doc(
        "permissions:write",
        description="Names are `resource:action` (see the `name` field for the exact rule);"
        " 409 `permission_exists` when the name is taken. A new permission is granted to no"
        " role, not even `admin`, until granted explicitly.",
    ),
)
async def create_permission(
    principal: PermissionsWriter, rbac: Rbac, body: PermissionWrite
) -> PermissionRead:
    return PermissionRead.model_validate(await rbac.create_permission(body))


@router.get(
    "/permissions/{permission_id}",
    response_model=PermissionRead,
    tags=["rbac: permissions"],
    summary="Get a permission",
    responses=_errors(404, 422),
    **permission_doc("permissions:read"),
)
async def get_permission(
    principal: PermissionsReader, rbac: Rbac, permission_id: uuid.UUID
) -> PermissionRead:
    return PermissionRead.model_validate(await rbac.get_permission(permission_id))


@router.put(
    "/permissions/{permission_id}",
    response_model=PermissionRead,
    tags=["rbac: permissions"],
    summary="Replace a permission's name and description",
    responses=_errors(404, 409, 422),
    **permission_doc(
        "permissions:write",
        description="409 `permission_exists` when the new name is taken; core permissions keep"
        " their name (409 `core_permission_protected`).",
    ),
)
async def update_permission(
    principal: PermissionsWriter, rbac: Rbac, permission_id: uuid.UUID, body: PermissionWrite
) -> PermissionRead:
    return PermissionRead.model_validate(await rbac.update_permission(permission_id, body))


@router.delete(
    "/permissions/{permission_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["rbac: permissions"],
    summary="Delete a permission",
    responses=_errors(404, 409, 422),
    **permission_doc(
        "permissions:write",
        description="A permission still granted to roles is refused with 409"
        " `permission_in_use` unless `force=true`. Core permissions cannot be deleted.",
    ),
)
async def delete_permission(
    principal: PermissionsWriter, rbac: Rbac, permission_id: uuid.UUID, force: Force = False
) -> None:
    await rbac.delete_permission(permission_id, force=force)


# --- role -> permission ------------------------------------------------------------------


@router.get(
    "/roles/{role_id}/permissions",
    response_model=RolePermissions,
    tags=["rbac: assignments"],
    summary="List a role's permissions",
    responses=_errors(404, 422),
    **permission_doc("roles:read"),
)
async def list_role_permissions(
    principal: RolesReader, rbac: Rbac, role_id: uuid.UUID
) -> RolePermissions:
    return await rbac.permissions_of_role(role_id)


@router.post(
    "/roles/{role_id}/permissions/{permission_id}",
    response_model=RolePermissionAssignment,
    tags=["rbac: assignments"],
    summary="Grant a permission to a role",
    responses=_errors(404, 422),
    **permission_doc(
        "roles:write",
        description="Idempotent: granting a permission the role already holds answers 200 with"
        " the same body (the original `assigned_at`).",
    ),
)
async def grant_permission(
    principal: RolesWriter, rbac: Rbac, role_id: uuid.UUID, permission_id: uuid.UUID
) -> RolePermissionAssignment:
    return await rbac.grant_permission(role_id, permission_id)


@router.delete(
    "/roles/{role_id}/permissions/{permission_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["rbac: assignments"],
    summary="Revoke a permission from a role",
    responses=_errors(404, 409, 422),
    **permission_doc(
        "roles:write",
        description="404 `assignment_not_found` when the role does not hold the permission.",
    ),
)
async def revoke_permission(
    principal: RolesWriter, rbac: Rbac, role_id: uuid.UUID, permission_id: uuid.UUID
) -> None:
    await rbac.revoke_permission(role_id, permission_id)


# --- user -> role ------------------------------------------------------------------------

_USER_LOOKUP = (
    " A user is known when their profile exists; otherwise, when Supabase is configured, the"
    " id is looked up through its admin API and a profile is created for a user it finds."
    " Unknown users get 404 `user_not_found`."
)


@router.get(
    "/users/{user_id}/roles",
    response_model=UserRoles,
    tags=["rbac: assignments"],
    summary="List a user's roles",
    responses=_errors(404, 422),
    **permission_doc("users:read", description="`user_id` is the Supabase user id." + _USER_LOOKUP),
)
async def list_user_roles(principal: UsersReader, rbac: Rbac, user_id: uuid.UUID) -> UserRoles:
    return await rbac.roles_of_user(user_id)


@router.post(
    "/users/{user_id}/roles/{role_id}",
    response_model=UserRoleAssignment,
    tags=["rbac: assignments"],
    summary="Assign a role to a user",
    responses=_errors(404, 422),
    **permission_doc(
        "users:write",
        description="Idempotent: assigning a role the user already holds answers 200 with the"
        " same body (the original `assigned_at`)." + _USER_LOOKUP,
    ),
)
async def assign_user_role(
    principal: UsersWriter, rbac: Rbac, user_id: uuid.UUID, role_id: uuid.UUID
) -> UserRoleAssignment:
    return await rbac.assign_role(user_id, role_id)


@router.delete(
    "/users/{user_id}/roles/{role_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["rbac: assignments"],
    summary="Remove a role from a user",
    responses=_errors(404, 409, 422),
    **permission_doc(
        "users:write",
        description="404 `assignment_not_found` when the user does not hold the role. Takes"
        " effect on the user's next request: permissions are read from the database, not the"
        " token." + _USER_LOOKUP,
    ),
)
async def unassign_user_role(
    principal: UsersWriter, rbac: Rbac, user_id: uuid.UUID, role_id: uuid.UUID
) -> None:
    await rbac.unassign_role(user_id, role_id)
