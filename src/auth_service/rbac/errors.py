"""RBAC domain errors; the core handler renders them with their status and code."""

from __future__ import annotations

from auth_service.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from auth_service.rbac.constants import PERMISSION_NAME_RULE, ROLE_NAME_RULE


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


class InvalidName(ValidationFailed):
    """A name that breaks its rule: 422 whose message is the rule itself."""

    kind = "name"
    rule = "The name is not valid."

    def __init__(self) -> None:
        # Same detail shape as request validation errors, so clients handle both alike.
        super().__init__(
            self.rule, details=[{"loc": ["body", "name"], "type": self.kind, "message": self.rule}]
        )


class InvalidPermissionName(InvalidName):
    kind = "permission_name"
    rule = PERMISSION_NAME_RULE


class InvalidRoleName(InvalidName):
    kind = "role_name"
    rule = ROLE_NAME_RULE


# --- privilege ceiling (issue 9) ---------------------------------------------------------


class PrivilegeCeiling(Forbidden):
    """The caller tried to hand out, or act on, more than it holds itself."""

    code = "privilege_ceiling"
    message = "You can only grant, or act on, permissions and roles you hold yourself."

    def __init__(
        self, *, missing_permissions: list[str], missing_roles: list[str] | None = None
    ) -> None:
        parts = []
        if missing_permissions:
            parts.append("permissions " + ", ".join(missing_permissions))
        if missing_roles:
            parts.append("roles " + ", ".join(missing_roles))
        super().__init__(
            f"{self.message} Missing: {'; '.join(parts)}.",
            details={
                "missing_permissions": missing_permissions,
                "missing_roles": missing_roles or [],
            },
        )


class CoreGrantProtected(Conflict):
    code = "core_grant_protected"
    message = "The admin role's core permissions cannot be revoked."


class LastAdmin(Conflict):
    code = "last_admin"
    message = (
        "This is the last user or client holding the admin role; assign admin to another"
        " principal first."
    )
