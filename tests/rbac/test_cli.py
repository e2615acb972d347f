"""Operator commands: `auth-service rbac bootstrap` and `auth-service rbac assign-role`."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.cli import main
from auth_service.rbac.constants import CORE_PERMISSIONS, CORE_ROLES
from auth_service.rbac.models import Role, UserRole
from auth_service.users.models import Profile


async def _run(
    monkeypatch: pytest.MonkeyPatch, database_url: str, *argv: str
) -> tuple[int, Any, str]:
    """The console entry point in a thread (it runs its own event loop): code, JSON, stderr."""
    monkeypatch.setenv("AUTH_SERVICE_DATABASE_URL", database_url)
    monkeypatch.setenv("LOGGING_LEVEL", "WARNING")
    out, err = io.StringIO(), io.StringIO()

    def call() -> int:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return main(list(argv))

    code = await asyncio.to_thread(call)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("{")]
    payload = json.loads(lines[-1]) if lines else None
    return code, payload, err.getvalue()


async def test_bootstrap_seeds_an_empty_database(
    db: AsyncSession, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await db.scalar(select(Role.id)) is None  # clean_db emptied everything
    code, payload, _ = await _run(monkeypatch, database_url, "rbac", "bootstrap")
    assert (code, payload) == (0, {"status": "ok"})
    roles = (await db.scalars(select(Role.name).order_by(Role.name))).all()
    assert roles == sorted(CORE_ROLES)
    count = await db.scalar(text("SELECT count(*) FROM auth_service_data.role_permissions"))
    assert count == len(CORE_PERMISSIONS)


async def test_assign_role_creates_the_profile_and_is_idempotent(
    db: AsyncSession, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id = uuid.uuid4()
    argv = ("rbac", "assign-role", "--user-id", str(user_id), "--role", "admin")
    code, first, _ = await _run(monkeypatch, database_url, *argv)
    assert code == 0
    assert (first["user_id"], first["role"]) == (str(user_id), "admin")
    code, again, _ = await _run(monkeypatch, database_url, *argv)
    assert (code, again) == (0, first)
    assert await db.get(Profile, user_id) is not None
    held = await db.scalars(
        select(Role.name)
        .join(UserRole, UserRole.role_id == Role.id)
        .where(UserRole.user_id == user_id)
    )
    assert held.all() == ["admin"]


async def test_assign_unknown_role_fails_and_writes_nothing(
    db: AsyncSession, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id = uuid.uuid4()
    code, payload, err = await _run(
        monkeypatch,
        database_url,
        "rbac",
        "assign-role",
        "--user-id",
        str(user_id),
        "--role",
        "nope",
    )
    assert (code, payload) == (1, None)
    assert "No role named 'nope'. (role_not_found)" in err
    assert await db.get(Profile, user_id) is None
