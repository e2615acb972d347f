"""Naming rules of roles and permissions (the database re-checks permissions with a CHECK)."""

from __future__ import annotations

import re

from auth_service.rbac.constants import PERMISSION_NAME_PATTERN, ROLE_NAME_PATTERN
from auth_service.rbac.errors import InvalidPermissionName, InvalidRoleName

_PERMISSION_NAME = re.compile(PERMISSION_NAME_PATTERN)
_ROLE_NAME = re.compile(ROLE_NAME_PATTERN)


def check_permission_name(name: str) -> None:
    # fullmatch: `$` alone would accept a trailing newline.
    if not _PERMISSION_NAME.fullmatch(name):
        raise InvalidPermissionName()


def check_role_name(name: str) -> None:
    if not _ROLE_NAME.fullmatch(name):
        raise InvalidRoleName()
