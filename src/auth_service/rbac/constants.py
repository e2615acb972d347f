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
}

ADMIN_ROLE = "admin"
USER_ROLE = "user"
SERVICE_ROLE = "service"

CORE_ROLES: dict[str, str] = {
    ADMIN_ROLE: "Full administrative access to auth_service.",
    USER_ROLE: "A signed-in human user.",
    SERVICE_ROLE: "A backend service (machine client).",
}
