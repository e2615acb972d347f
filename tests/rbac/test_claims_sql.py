"""The claims SQL functions, called directly in PostgreSQL as Supabase Auth would."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.rbac.models import Permission, Role, RolePermission, UserRole
from auth_service.users.models import Profile

EMPTY = {"roles": [], "permissions": []}


async def _claims(db: AsyncSession, user_id: uuid.UUID) -> Any:
    return await db.scalar(
        text("SELECT auth_service_data.get_user_rbac_claims(:uid)"), {"uid": user_id}
    )


async def _hook(db: AsyncSession, event: dict[str, Any]) -> Any:
    return await db.scalar(
        text("SELECT public.custom_access_token_hook(CAST(:event AS jsonb))"),
        {"event": json.dumps(event)},
    )


async def _grant(db: AsyncSession, role: Role, *permissions: Permission) -> None:
    db.add_all(RolePermission(role_id=role.id, permission_id=p.id) for p in permissions)
    await db.flush()


async def _user_with_overlapping_roles(db: AsyncSession) -> uuid.UUID:
    """Two roles sharing `reports:read`; created out of alphabetical order."""
    user_id = uuid.uuid4()
    zeta, alpha = Role(name="zeta-team"), Role(name="alpha-team")
    read, export, audit = (
        Permission(name="reports:read"),
        Permission(name="reports:export"),
        Permission(name="audit.log:read"),
    )
    db.add_all([zeta, alpha, read, export, audit, Profile(user_id=user_id)])
    await db.flush()
    await _grant(db, zeta, read, export)
    await _grant(db, alpha, read, audit)
    db.add_all(
        [UserRole(user_id=user_id, role_id=zeta.id), UserRole(user_id=user_id, role_id=alpha.id)]
    )
    await db.commit()
    return user_id


async def test_claims_of_a_user_with_overlapping_roles_are_sorted_and_unique(
    db: AsyncSession,
) -> None:
    user_id = await _user_with_overlapping_roles(db)
    assert await _claims(db, user_id) == {
        "roles": ["alpha-team", "zeta-team"],
        "permissions": ["audit.log:read", "reports:export", "reports:read"],
    }


async def test_claims_of_a_role_without_permissions_list_the_role_only(db: AsyncSession) -> None:
    user_id = uuid.uuid4()
    role = Role(name="viewer")
    db.add(role)
    await db.flush()
    db.add(UserRole(user_id=user_id, role_id=role.id))
    await db.commit()
    assert await _claims(db, user_id) == {"roles": ["viewer"], "permissions": []}


async def test_claims_of_a_user_without_roles_are_empty_arrays(db: AsyncSession) -> None:
    user_id = uuid.uuid4()
    db.add(Profile(user_id=user_id))
    await db.commit()
    assert await _claims(db, user_id) == EMPTY


async def test_claims_of_an_unknown_user_are_empty_arrays(db: AsyncSession) -> None:
    await _user_with_overlapping_roles(db)
    assert await _claims(db, uuid.uuid4()) == EMPTY


async def test_claims_of_a_disabled_profile_are_empty_arrays(db: AsyncSession) -> None:
    user_id = await _user_with_overlapping_roles(db)
    profile = await db.get(Profile, user_id)
    assert profile is not None
    profile.is_active = False
    await db.commit()
    assert await _claims(db, user_id) == EMPTY


def _supabase_event(user_id: uuid.UUID) -> dict[str, Any]:
    """What Supabase Auth sends to the custom access token hook."""
    return {
        "user_id": str(user_id),
        "authentication_method": "password",
        "claims": {
            "aud": "authenticated",
            "exp": 1_800_000_000,
            "iat": 1_799_996_400,
            "iss": "https://project.supabase.co/auth/v1",
            "sub": str(user_id),
            "email": "ada@example.com",
            "phone": "",
            "role": "authenticated",
            "aal": "aal1",
            "amr": [{"method": "password", "timestamp": 1_799_996_400}],
            "session_id": str(uuid.uuid4()),
            "is_anonymous": False,
            "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": {"first_name": "Ada", "nested": {"a": [1, 2]}},
        },
    }


async def test_hook_adds_roles_and_permissions_and_keeps_every_supabase_claim(
    db: AsyncSession,
) -> None:
    user_id = await _user_with_overlapping_roles(db)
    event = _supabase_event(user_id)
    result = await _hook(db, event)
    assert set(result) == {"claims"}
    assert result["claims"] == {
        **event["claims"],
        "roles": ["alpha-team", "zeta-team"],
        "permissions": ["audit.log:read", "reports:export", "reports:read"],
    }


async def test_hook_gives_empty_arrays_to_a_user_without_roles(db: AsyncSession) -> None:
    event = _supabase_event(uuid.uuid4())
    result = await _hook(db, event)
    assert result == {"claims": {**event["claims"], **EMPTY}}


async def test_hook_replaces_roles_claims_that_did_not_come_from_the_database(
    db: AsyncSession,
) -> None:
    user_id = await _user_with_overlapping_roles(db)
    event = _supabase_event(user_id)
    event["claims"]["roles"] = ["admin"]
    event["claims"]["permissions"] = ["users:write"]
    result = await _hook(db, event)
    assert result["claims"]["roles"] == ["alpha-team", "zeta-team"]
    assert "users:write" not in result["claims"]["permissions"]


async def test_hook_with_a_malformed_user_id_keeps_the_claims_and_grants_nothing(
    db: AsyncSession,
) -> None:
    event = _supabase_event(uuid.uuid4())
    event["user_id"] = "not-a-uuid'; DROP TABLE x; --"
    event["claims"]["sub"] = "also-not-a-uuid"
    result = await _hook(db, event)
    assert result == {"claims": {**event["claims"], **EMPTY}}
