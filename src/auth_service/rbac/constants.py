"""Core roles and permissions, seeded idempotently at startup."""

from __future__ import annotations

CORE_PERMISSIONS: dict[str, str] = {
    "clients:read": "List and read app clients.",
    "clients:write": "Create, update, delete app clients, rotate secrets, assign client roles.",
    "roles:read": "List and read roles and their permissions.",
    "roles:write": "Create, update, delete roles and grant permissions to roles.",
    "permissions:read": "List and read permissions.",
    "permissions:write": "Create, update and delete permissions.",
    "users:read": "Read users' profiles and roles.",
    "users:write": "Assign roles to users and delete users.",
    "tokens:exchange": "Exchange a user's access token for one to call another service on their"
    " behalf (RFC 8693 token exchange).",
    "audit:read": "Read the audit log.",
}

ADMIN_ROLE = "admin"
USER_ROLE = "user"
SERVICE_ROLE = "service"

CORE_ROLES: dict[str, str] = {
    ADMIN_ROLE: "Full administrative access to auth_service.",
    USER_ROLE: "A signed-in human user.",
    SERVICE_ROLE: "A backend service (machine client).",
}

# Permission names are `resource:action`: lowercase ASCII, each part starting with a letter.
# The same pattern is a CHECK constraint on the table (migration 20261126_0003).
PERMISSION_NAME_PATTERN = r"^[a-z][a-z0-9_.-]{0,62}:[a-z][a-z0-9_.-]{0,62}$"
PERMISSION_NAME_RULE = (
    "Permission names must be `resource:action`: two parts joined by one colon, each 1-63"
    " characters of lowercase letters a-z, digits 0-9, '_', '-' or '.', starting with a letter"
    " (for example `invoices:read`)."
)

# Role names travel in token claims; keep them as plain as permission names.
ROLE_NAME_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"
ROLE_NAME_RULE = (
    "Role names must be 1-64 characters of lowercase letters a-z, digits 0-9, '_', '-' or '.',"
    " starting with a letter (for example `billing-admin`)."
)
