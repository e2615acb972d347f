"""RBAC domain errors; the core handler renders them with their status and code."""

from __future__ import annotations

from auth_service.core.errors import Conflict, NotFound


class RoleNotFound(NotFound):
    code = "role_not_found"
    message = "The role was not found."


class PermissionNotFound(NotFound):
    code = "permission_not_found"
    message = "The permission was not found."


class UserNotFound(NotFound):
    code = "user_not_found"
    message = "The user was not found."


class AssignmentNotFound(NotFound):
    code = "assignment_not_found"
    message = "That assignment does not exist."


class RoleNameTaken(Conflict):
    code = "role_exists"
    message = "A role with that name already exists."


class PermissionNameTaken(Conflict):
    code = "permission_exists"
    message = "A permission with that name already exists."


class RoleInUse(Conflict):
    code = "role_in_use"
    message = "The role is still assigned. Remove its assignments first or pass force=true."


class PermissionInUse(Conflict):
    code = "permission_in_use"
    message = "The permission is still granted to roles. Revoke it first or pass force=true."


class CoreRoleProtected(Conflict):
    code = "core_role_protected"
    message = "Core roles (admin, user, service) cannot be renamed or deleted."


class CorePermissionProtected(Conflict):
    code = "core_permission_protected"
    message = "Core permissions cannot be renamed or deleted."
