"""Admin user endpoints, reached with a human user's JWT once that user holds `admin`."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
from fastapi import FastAPI
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.clients.models import AppClient
from auth_service.rbac.models import Role, UserRole
from auth_service.users.models import Profile
from tests.factories import (
    USER_PASSWORD,
    admin_headers,
    client_token,
    create_client,
    create_role,
    login_user,
    register_user,
)
from tests.support.gotrue import GoTrueStandIn

AppWith = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def role_id(db: AsyncSession, name: str) -> uuid.UUID:
    found = await db.scalar(select(Role.id).where(Role.name == name))
    assert found is not None
    return found


async def make_admin_user(
    client: httpx.AsyncClient, app: FastAPI, db: AsyncSession, email: str
) -> tuple[str, str]:
    """Register a user and give them `admin` through the RBAC endpoint: (user_id, token)."""
    user_id = (await register_user(client, email))["user"]["id"]
    granted = await client.post(
        f"/auth/admin/users/{user_id}/roles/{await role_id(db, 'admin')}",
        headers=await admin_headers(app, client),
    )
    assert granted.status_code == 200, granted.text
    return user_id, (await login_user(client, email))["access_token"]


async def test_user_jwt_with_admin_role_reads_a_user_with_profile_and_roles(
    client: httpx.AsyncClient, app: FastAPI, db: AsyncSession
) -> None:
    target = await register_user(client, "target@example.com", username="tgt")
    _, token = await make_admin_user(client, app, db, "boss@example.com")
    response = await client.get(f"/auth/admin/users/{target['user']['id']}", headers=bearer(token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["email"] == "target@example.com"
    assert body["profile"]["username"] == "tgt"
    assert body["roles"] == []
    boss_id, _ = await make_admin_user(client, app, db, "boss2@example.com")
    me = await client.get(f"/auth/admin/users/{boss_id}", headers=bearer(token))
    assert me.json()["roles"] == ["admin"]


async def test_user_without_the_permission_gets_403(client: httpx.AsyncClient) -> None:
    target = await register_user(client, "t@example.com")
    await register_user(client, "plain@example.com")
    token = (await login_user(client, "plain@example.com"))["access_token"]
    response = await client.get(f"/auth/admin/users/{target['user']['id']}", headers=bearer(token))
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_permissions"
    deleted = await client.delete(
        f"/auth/admin/users/{target['user']['id']}", headers=bearer(token)
    )
    assert deleted.status_code == 403


async def test_logged_out_admin_token_is_refused_by_admin_endpoints(
    client: httpx.AsyncClient, app: FastAPI, db: AsyncSession
) -> None:
    user_id, token = await make_admin_user(client, app, db, "gone-admin@example.com")
    assert (
        await client.get(f"/auth/admin/users/{user_id}", headers=bearer(token))
    ).status_code == 200
    await client.post("/auth/users/logout", headers=bearer(token))
    refused = await client.get(f"/auth/admin/users/{user_id}", headers=bearer(token))
    assert refused.status_code == 401


async def test_unknown_user_is_404(
    client: httpx.AsyncClient, app: FastAPI, db: AsyncSession
) -> None:
    _, token = await make_admin_user(client, app, db, "a404@example.com")
    response = await client.get(f"/auth/admin/users/{uuid.uuid4()}", headers=bearer(token))
    assert response.status_code == 404
    assert response.json()["error"] == "user_not_found"
    gone = await client.delete(f"/auth/admin/users/{uuid.uuid4()}", headers=bearer(token))
    assert gone.status_code == 404


async def test_delete_removes_the_supabase_user_and_our_rows(
    client: httpx.AsyncClient, app: FastAPI, db: AsyncSession, gotrue: GoTrueStandIn
) -> None:
    _, token = await make_admin_user(client, app, db, "deleter@example.com")
    victim_id, victim_token = await make_admin_user(client, app, db, "victim@example.com")
    response = await client.delete(f"/auth/admin/users/{victim_id}", headers=bearer(token))
    assert response.status_code == 204, response.text
    assert gotrue.user_by_email("victim@example.com") is None
    db.expire_all()
    victim = uuid.UUID(victim_id)
    assert await db.get(Profile, victim) is None
    assert await db.scalar(select(UserRole).where(UserRole.user_id == victim)) is None
    after = await client.get(f"/auth/admin/users/{victim_id}", headers=bearer(token))
    assert after.status_code == 404
    # The deleted admin's still-unexpired token is cut off at once (issue 9), and never
    # recreates a profile.
    refused = await client.get("/auth/users/me", headers=bearer(victim_token))
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_token"
    db.expire_all()
    assert await db.get(Profile, victim) is None


async def test_delete_rolls_back_our_rows_when_supabase_fails(
    client: httpx.AsyncClient, app: FastAPI, db: AsyncSession, gotrue: GoTrueStandIn
) -> None:
    _, token = await make_admin_user(client, app, db, "d2@example.com")
    victim = await register_user(client, "stays@example.com")
    victim_id = victim["user"]["id"]
    gotrue.fail_next(500, "unexpected_failure", path=f"/auth/v1/admin/users/{victim_id}")
    response = await client.delete(f"/auth/admin/users/{victim_id}", headers=bearer(token))
    assert response.status_code == 503
    assert response.json()["error"] == "identity_provider_unavailable"
    db.expire_all()
    assert await db.get(Profile, uuid.UUID(victim_id)) is not None
    assert gotrue.user_by_email("stays@example.com") is not None


async def test_machine_admin_token_can_use_the_admin_user_endpoints(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    target = await register_user(client, "m@example.com")
    response = await client.get(
        f"/auth/admin/users/{target['user']['id']}", headers=await admin_headers(app, client)
    )
    assert response.status_code == 200


async def test_initial_admin_is_created_in_supabase_and_gets_admin(
    app_with: AppWith, gotrue: GoTrueStandIn
) -> None:
    overrides = {
        "initial_admin_email": "root@example.com",
        "initial_admin_password": "Root-pass-123",
    }
    async with app_with(**overrides) as client:
        user = gotrue.user_by_email("root@example.com")
        assert user is not None
        assert user.confirmed_at is not None
        token = (await login_user(client, "root@example.com", "Root-pass-123"))["access_token"]
        response = await client.get(f"/auth/admin/users/{user.id}", headers=bearer(token))
        assert response.status_code == 200, response.text
        assert response.json()["roles"] == ["admin"]
    # A restart finds the existing user instead of failing or duplicating it.
    async with app_with(**overrides) as client:
        again = gotrue.user_by_email("root@example.com")
        assert again is not None
        assert again.id == user.id
        assert len([u for u in gotrue.users.values() if u.email == "root@example.com"]) == 1


# --- bans (issue 9: sessions end when accounts do) ------------------------------------------


async def ban(
    client: httpx.AsyncClient, user_id: str, headers: dict[str, str], duration: str = "24h"
) -> httpx.Response:
    return await client.post(
        f"/auth/admin/users/{user_id}/ban", json={"duration": duration}, headers=headers
    )


async def audit_rows(db: AsyncSession, action: str, target_id: str) -> list[dict[str, object]]:
    rows = await db.execute(
        text(
            "SELECT actor_kind, actor_id, target_kind, outcome, details"
            " FROM auth_service_data.audit_events WHERE action = :a AND target_id = :t"
        ),
        {"a": action, "t": target_id},
    )
    return [dict(r._mapping) for r in rows]


async def test_ban_cuts_off_tokens_refuses_login_and_unban_restores_it(
    client: httpx.AsyncClient, app: FastAPI, db: AsyncSession, gotrue: GoTrueStandIn
) -> None:
    boss_id, token = await make_admin_user(client, app, db, "banner@example.com")
    victim_id = (await register_user(client, "banned@example.com"))["user"]["id"]
    victim = await login_user(client, "banned@example.com")
    assert (
        await client.get("/auth/users/me", headers=bearer(victim["access_token"]))
    ).status_code == 200

    banned = await ban(client, victim_id, bearer(token), "1h30m")
    assert banned.status_code == 200, banned.text
    assert banned.json()["banned_until"] is not None
    stand_in_user = gotrue.user_by_email("banned@example.com")
    assert stand_in_user is not None
    assert stand_in_user.is_banned()
    # The outstanding access token is verified locally: our cutoff refuses it at once.
    refused = await client.get("/auth/users/me", headers=bearer(victim["access_token"]))
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_token"
    login = await client.post(
        "/auth/users/login", json={"email": "banned@example.com", "password": USER_PASSWORD}
    )
    assert login.status_code == 403, login.text
    assert login.json()["error"] == "user_banned"
    refresh = await client.post(
        "/auth/users/token/refresh", json={"refresh_token": victim["refresh_token"]}
    )
    assert refresh.status_code == 403, refresh.text
    assert refresh.json()["error"] == "user_banned"
    seen = await client.get(f"/auth/admin/users/{victim_id}", headers=bearer(token))
    assert seen.json()["banned_until"] == banned.json()["banned_until"]

    lifted = await client.delete(f"/auth/admin/users/{victim_id}/ban", headers=bearer(token))
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["banned_until"] is None
    await login_user(client, "banned@example.com")

    ban_events = await audit_rows(db, "user.ban", victim_id)
    assert len(ban_events) == 1
    assert ban_events[0]["actor_kind"] == "user"
    assert ban_events[0]["actor_id"] == boss_id
    assert ban_events[0]["target_kind"] == "user"
    assert ban_events[0]["outcome"] == "success"
    assert isinstance(ban_events[0]["details"], dict)
    assert ban_events[0]["details"]["banned_until"]
    unban_events = await audit_rows(db, "user.unban", victim_id)
    assert [(e["actor_id"], e["outcome"]) for e in unban_events] == [(boss_id, "success")]


async def test_ban_duration_follows_gotrue_and_none_lifts_the_ban(
    client: httpx.AsyncClient, app: FastAPI, gotrue: GoTrueStandIn
) -> None:
    victim_id = (await register_user(client, "dur@example.com"))["user"]["id"]
    headers = await admin_headers(app, client)
    for bad in ("1 day", "24", "-1h", "1d", "h", "none24h"):
        response = await ban(client, victim_id, headers, bad)
        assert response.status_code == 422, (bad, response.text)
    user = gotrue.user_by_email("dur@example.com")
    assert user is not None
    assert user.banned_until is None
    assert (await ban(client, victim_id, headers, "876000h")).status_code == 200
    assert user.banned_until is not None
    assert user.banned_until > time.time() + 99 * 365 * 86400  # "permanent": a century
    for lift in ("none", "0s"):  # GoTrue: a zero duration lifts the ban too
        assert (await ban(client, victim_id, headers, "1h")).status_code == 200
        assert user.is_banned()
        lifted = await ban(client, victim_id, headers, lift)
        assert lifted.status_code == 200, lifted.text
        assert lifted.json()["banned_until"] is None
        assert not user.is_banned()
    # Longer than Go can express: capped at about 292 years, not refused.
    capped = await ban(client, victim_id, headers, "9" * 30 + "h")
    assert capped.status_code == 200, capped.text
    assert user.banned_until is not None
    assert user.banned_until > time.time() + 290 * 365 * 86400
    unknown = await ban(client, str(uuid.uuid4()), headers)
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "user_not_found"


async def test_ban_is_bounded_by_the_privilege_ceiling(
    client: httpx.AsyncClient, app: FastAPI, db: AsyncSession
) -> None:
    admin_id, _ = await make_admin_user(client, app, db, "ceiling-admin@example.com")
    plain_id = (await register_user(client, "plain-ban@example.com"))["user"]["id"]
    await create_role(app, "user-writer", ["users:write", "users:read"])
    writer, secret = await create_client(app, roles=["user-writer"])
    headers = bearer(await client_token(client, writer, secret))
    for response in (
        await ban(client, admin_id, headers),
        await client.delete(f"/auth/admin/users/{admin_id}/ban", headers=headers),
    ):
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "privilege_ceiling"
    assert (await ban(client, plain_id, headers)).status_code == 200
    denied = await db.execute(
        text(
            "SELECT details->>'attempted' FROM auth_service_data.audit_events"
            " WHERE action = 'access.privilege_ceiling' AND actor_id = :a"
        ),
        {"a": str(writer)},
    )
    assert sorted(r[0] for r in denied) == ["user.ban", "user.unban"]
    assert await audit_rows(db, "user.ban", admin_id) == []


async def test_the_last_admin_who_can_sign_in_cannot_be_banned_or_deleted(
    client: httpx.AsyncClient, app: FastAPI, db: AsyncSession
) -> None:
    first_id, first = await make_admin_user(client, app, db, "first-admin@example.com")
    second_id, _ = await make_admin_user(client, app, db, "second-admin@example.com")
    # Only the two users hold admin: the machine clients that set them up step aside.
    await db.execute(update(AppClient).values(is_active=False))
    await db.commit()

    assert (await ban(client, second_id, bearer(first))).status_code == 200
    # The other holder is banned, so `first` is the last admin who can still sign in.
    for response in (
        await ban(client, first_id, bearer(first)),
        await client.delete(f"/auth/admin/users/{first_id}", headers=bearer(first)),
    ):
        assert response.status_code == 409, response.text
        assert response.json()["error"] == "last_admin"
    assert await audit_rows(db, "user.ban", first_id) == []
    # Lifting the other's ban makes it a usable admin again.
    lifted = await client.delete(f"/auth/admin/users/{second_id}/ban", headers=bearer(first))
    assert lifted.status_code == 200
    assert (await ban(client, first_id, bearer(first))).status_code == 200
