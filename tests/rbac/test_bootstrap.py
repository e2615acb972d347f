"""Startup seeding: core roles and permissions, the initial admin, and idempotence."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.main import create_app
from auth_service.rbac.bootstrap import seed_core_rbac
from auth_service.rbac.constants import CORE_PERMISSIONS, CORE_ROLES
from auth_service.rbac.models import Permission, Role, RolePermission, UserRole
from auth_service.users.models import Profile
from tests.conftest import make_settings
from tests.factories import create_permission, supabase_overrides
from tests.support.gotrue import GoTrueStandIn

ADMIN_EMAIL = "root@example.com"
ADMIN_PASSWORD = "Initial-admin-1"


async def _grants(db: AsyncSession) -> dict[str, list[str]]:
    rows = await db.execute(
        select(Role.name, Permission.name)
        .join(RolePermission, RolePermission.role_id == Role.id)
        .join(Permission, Permission.id == RolePermission.permission_id)
        .order_by(Role.name, Permission.name)
    )
    grants: dict[str, list[str]] = {}
    for role, perm in rows:
        grants.setdefault(role, []).append(perm)
    return grants


async def _snapshot(db: AsyncSession) -> dict[str, Any]:
    """Every RBAC row with its timestamps, to prove a rerun changed nothing at all."""
    tables = ("roles", "permissions", "role_permissions", "user_roles", "profiles")
    snapshot = {}
    for table in tables:
        rows = await db.execute(text(f"SELECT * FROM auth_service_data.{table} ORDER BY 1, 2"))
        snapshot[table] = [tuple(row) for row in rows]
    return snapshot


def _logs(capsys: pytest.CaptureFixture[str], logger: str) -> list[dict[str, Any]]:
    """Our JSON log lines (stdout) from `logger`."""
    out = capsys.readouterr().out
    entries = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [e for e in entries if e.get("logger") == logger]


async def _run_app(**overrides: Any) -> None:
    app = create_app(make_settings(**overrides))
    async with app.router.lifespan_context(app):
        pass


async def test_startup_seeds_core_roles_and_gives_admin_every_core_permission(
    app: FastAPI, db: AsyncSession
) -> None:
    roles = (await db.scalars(select(Role.name).order_by(Role.name))).all()
    assert roles == sorted(CORE_ROLES)
    permissions = (await db.scalars(select(Permission.name).order_by(Permission.name))).all()
    assert permissions == sorted(CORE_PERMISSIONS)
    # Only admin holds anything; user and service start empty.
    assert await _grants(db) == {"admin": sorted(CORE_PERMISSIONS)}


async def test_custom_permissions_are_not_granted_to_admin(
    app: FastAPI, db: AsyncSession, database_url: str
) -> None:
    await create_permission(app, "invoices:read")
    await _run_app(auth_service_database_url=database_url)  # a restart
    assert "invoices:read" not in (await _grants(db))["admin"]


async def test_seeding_twice_changes_nothing(
    app: FastAPI, db: AsyncSession, database_url: str
) -> None:
    before = await _snapshot(db)
    async with app.state.session_factory.begin() as session:
        await seed_core_rbac(session)
    await _run_app(auth_service_database_url=database_url)
    assert await _snapshot(db) == before


async def test_startup_restores_a_core_grant_removed_from_admin(
    app: FastAPI, db: AsyncSession, database_url: str
) -> None:
    perm_id = await db.scalar(select(Permission.id).where(Permission.name == "roles:write"))
    await db.execute(delete(RolePermission).where(RolePermission.permission_id == perm_id))
    await db.commit()
    assert "roles:write" not in (await _grants(db))["admin"]
    await _run_app(auth_service_database_url=database_url)
    assert (await _grants(db))["admin"] == sorted(CORE_PERMISSIONS)


async def test_core_descriptions_edited_by_an_admin_survive_a_restart(
    app: FastAPI, db: AsyncSession, database_url: str
) -> None:
    role = await db.scalar(select(Role).where(Role.name == "user"))
    assert role is not None
    role.description = "Our customers."
    await db.commit()
    await _run_app(auth_service_database_url=database_url)
    await db.refresh(role)
    assert role.description == "Our customers."


async def test_initial_admin_without_supabase_is_skipped_with_a_warning(
    database_url: str, clean_db: None, db: AsyncSession, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    await _run_app(
        auth_service_database_url=database_url,
        identity_provider="supabase",  # chosen, but not configured (the local default has users)
        logging_level="INFO",
        initial_admin_email=ADMIN_EMAIL,
        initial_admin_password=ADMIN_PASSWORD,
    )
    out = capsys.readouterr().out
    assert ADMIN_PASSWORD not in out
    entries = [json.loads(line) for line in out.splitlines() if "rbac.bootstrap" in line]
    assert [(e["level"], e["message"]) for e in entries] == [
        (
            "warning",
            "initial admin skipped: INITIAL_ADMIN_EMAIL is set but Supabase is not configured"
            " (SUPABASE_URL, SUPABASE_ANON_KEY, SUPABASE_SERVICE_ROLE_KEY); users live there",
        )
    ]
    assert await db.scalar(select(Profile.user_id)) is None
    assert await db.scalar(select(UserRole.user_id)) is None


async def test_initial_admin_with_only_an_email_is_skipped_with_a_warning(
    database_url: str,
    gotrue: GoTrueStandIn,
    clean_db: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    await _run_app(
        auth_service_database_url=database_url,
        initial_admin_email=ADMIN_EMAIL,
        **supabase_overrides(gotrue),
    )
    [entry] = _logs(capsys, "auth_service.rbac.bootstrap")
    assert entry["level"] == "warning"
    assert "set both INITIAL_ADMIN_EMAIL and INITIAL_ADMIN_PASSWORD" in entry["message"]
    assert gotrue.user_by_email(ADMIN_EMAIL) is None


async def test_initial_admin_is_created_in_supabase_and_holds_admin_once(
    database_url: str, gotrue: GoTrueStandIn, clean_db: None, db: AsyncSession
) -> None:
    settings = {
        "auth_service_database_url": database_url,
        "initial_admin_email": ADMIN_EMAIL,
        "initial_admin_password": ADMIN_PASSWORD,
        **supabase_overrides(gotrue),
    }
    await _run_app(**settings)
    user = gotrue.user_by_email(ADMIN_EMAIL)
    assert user is not None
    user_id = uuid.UUID(user.id)
    assert await db.get(Profile, user_id) is not None
    held = await db.scalars(
        select(Role.name)
        .join(UserRole, UserRole.role_id == Role.id)
        .where(UserRole.user_id == user_id)
    )
    assert held.all() == ["admin"]

    before = await _snapshot(db)
    await _run_app(**settings)
    assert await _snapshot(db) == before
    assert [u.email for u in gotrue.users.values()] == [ADMIN_EMAIL]


async def test_initial_admin_for_an_existing_supabase_user_reuses_it(
    database_url: str, gotrue: GoTrueStandIn, clean_db: None, db: AsyncSession
) -> None:
    existing = gotrue.create_user(ADMIN_EMAIL, "Some-other-pass-1")
    await _run_app(
        auth_service_database_url=database_url,
        initial_admin_email=ADMIN_EMAIL,
        initial_admin_password=ADMIN_PASSWORD,
        **supabase_overrides(gotrue),
    )
    assert len(gotrue.users) == 1
    assert await db.scalar(select(UserRole.user_id)) == uuid.UUID(existing.id)


async def test_initial_admin_when_supabase_fails_does_not_stop_startup(
    database_url: str,
    gotrue: GoTrueStandIn,
    clean_db: None,
    db: AsyncSession,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gotrue.fail_next(500)
    capsys.readouterr()
    await _run_app(
        auth_service_database_url=database_url,
        initial_admin_email=ADMIN_EMAIL,
        initial_admin_password=ADMIN_PASSWORD,
        **supabase_overrides(gotrue),
    )
    out = capsys.readouterr().out
    assert ADMIN_PASSWORD not in out
    assert ADMIN_EMAIL not in out
    entries = [json.loads(line) for line in out.splitlines() if "rbac.bootstrap" in line]
    assert [(e["level"], e["message"]) for e in entries] == [
        ("error", "initial admin not created: the identity provider failed")
    ]
    assert entries[0]["error_type"]
    assert await db.scalar(select(UserRole.user_id)) is None
    # Core seeding still happened.
    assert await db.scalar(select(Role.id).where(Role.name == "admin")) is not None
