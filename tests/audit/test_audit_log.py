"""The audit log: every action recorded with its actor, target and outcome (issue 9)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pyotp
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.audit import AuditAction
from auth_service.audit.cli import prune
from auth_service.cli import main
from auth_service.main import create_app
from auth_service.rbac.schemas import RoleWrite
from auth_service.rbac.service import RbacService
from tests.conftest import make_settings
from tests.factories import (
    USER_PASSWORD,
    admin_headers,
    client_token,
    create_client,
    create_profile,
    login_user,
    register_user,
    supabase_overrides,
)
from tests.support.gotrue import GoTrueStandIn

Row = dict[str, Any]

# Which test below performs each action; a new action without a test fails the first test.
COVERAGE = {
    AuditAction.CLIENT_CREATE: "test_admin_changes",
    AuditAction.CLIENT_UPDATE: "test_admin_changes",
    AuditAction.CLIENT_DELETE: "test_admin_changes",
    AuditAction.CLIENT_SECRET_ROTATE: "test_admin_changes",
    AuditAction.CLIENT_ROLE_ASSIGN: "test_admin_changes",
    AuditAction.CLIENT_ROLE_REMOVE: "test_admin_changes",
    AuditAction.ROLE_CREATE: "test_admin_changes",
    AuditAction.ROLE_UPDATE: "test_admin_changes",
    AuditAction.ROLE_DELETE: "test_admin_changes",
    AuditAction.ROLE_PERMISSION_GRANT: "test_admin_changes",
    AuditAction.ROLE_PERMISSION_REVOKE: "test_admin_changes",
    AuditAction.PERMISSION_CREATE: "test_admin_changes",
    AuditAction.PERMISSION_UPDATE: "test_admin_changes",
    AuditAction.PERMISSION_DELETE: "test_admin_changes",
    AuditAction.USER_ROLE_ASSIGN: "test_admin_changes",
    AuditAction.USER_ROLE_REMOVE: "test_admin_changes",
    AuditAction.USER_DELETE: "test_admin_changes",
    AuditAction.USER_BAN: "tests/users/test_admin_users.py",
    AuditAction.USER_UNBAN: "tests/users/test_admin_users.py",
    AuditAction.KEY_ROTATE: "test_operator_commands",
    AuditAction.KEY_REMOVE: "test_operator_commands",
    AuditAction.RBAC_BOOTSTRAP: "test_bootstrap_of_the_initial_admin",
    AuditAction.AUDIT_PRUNE: "test_prune_removes_only_old_events_despite_append_only",
    AuditAction.USER_REGISTER: "test_human_sign_in",
    AuditAction.USER_LOGIN: "test_human_sign_in",
    AuditAction.USER_LOGOUT: "test_human_sign_in",
    AuditAction.USER_PASSWORD_RESET: "test_human_sign_in",
    AuditAction.USER_PASSWORD_UPDATE: "test_human_sign_in",
    AuditAction.USER_MFA_ENROLL: "test_human_sign_in",
    AuditAction.USER_MFA_VERIFY: "test_human_sign_in",
    AuditAction.USER_MFA_UNENROLL: "test_human_sign_in",
    AuditAction.TOKEN_REVOKE: "test_machine_tokens",
    AuditAction.CLIENT_AUTH_FAILED: "test_machine_tokens",
    AuditAction.PRIVILEGE_CEILING: "tests/rbac/test_privilege_ceiling.py",
    AuditAction.MFA_REQUIRED: "tests/users/test_admin_mfa.py",
    AuditAction.RATE_LIMITED: "test_rate_limit_trips",
}


def test_every_action_has_a_test() -> None:
    assert set(COVERAGE) == set(AuditAction)


async def events(db: AsyncSession, action: str | None = None) -> list[Row]:
    query = "SELECT * FROM auth_service_data.audit_events"
    params: dict[str, Any] = {}
    if action:
        query += " WHERE action = :action"
        params["action"] = action
    rows = await db.execute(text(query + " ORDER BY id"), params)
    return [dict(r._mapping) for r in rows]


async def one(db: AsyncSession, action: AuditAction, **expected: Any) -> Row:
    found = await events(db, str(action))
    matching = [e for e in found if all(e[k] == v for k, v in expected.items())]
    assert len(matching) >= 1, (action, expected, found)
    return matching[-1]


def assert_no_secret(rows: list[Row], log: str, secrets: list[str]) -> None:
    dumped = json.dumps(rows, default=str) + log
    for secret in secrets:
        assert secret
        assert secret not in dumped, "a secret reached the audit log"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_admin_changes(
    app: FastAPI, client: httpx.AsyncClient, db: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "auth_service.audit")
    admin_id, admin_secret = await create_client(app, roles=["admin"])
    admin_token = await client_token(client, admin_id, admin_secret)
    h = {**bearer(admin_token), "User-Agent": "audit-test/1"}
    actor = {"actor_kind": "client", "actor_id": str(admin_id), "outcome": "success"}

    created = (await client.post("/auth/admin/clients", json={"name": "c1"}, headers=h)).json()
    cid = created["client_id"]
    row = await one(db, AuditAction.CLIENT_CREATE, target_kind="client", target_id=cid, **actor)
    assert row["user_agent"] == "audit-test/1"
    assert row["client_ip"] == "127.0.0.1"
    assert row["request_id"]
    body = {"name": "c2", "description": None, "allowed_audiences": [], "is_active": True}
    assert (await client.put(f"/auth/admin/clients/{cid}", json=body, headers=h)).is_success
    await one(db, AuditAction.CLIENT_UPDATE, target_id=cid, **actor)
    rotated = (await client.post(f"/auth/admin/clients/{cid}/secret", headers=h)).json()
    await one(db, AuditAction.CLIENT_SECRET_ROTATE, target_id=cid, **actor)

    role = (await client.post("/auth/admin/roles", json={"name": "ops"}, headers=h)).json()
    await one(db, AuditAction.ROLE_CREATE, target_kind="role", target_id=role["id"], **actor)
    renamed = {"name": "ops2", "description": "x"}
    assert (await client.put(f"/auth/admin/roles/{role['id']}", json=renamed, headers=h)).is_success
    await one(db, AuditAction.ROLE_UPDATE, target_id=role["id"], **actor)
    perm = (await client.post("/auth/admin/permissions", json={"name": "a:b"}, headers=h)).json()
    await one(db, AuditAction.PERMISSION_CREATE, target_id=perm["id"], **actor)
    pbody = {"name": "a:c", "description": None}
    assert (
        await client.put(f"/auth/admin/permissions/{perm['id']}", json=pbody, headers=h)
    ).is_success
    await one(db, AuditAction.PERMISSION_UPDATE, target_id=perm["id"], **actor)
    grant = f"/auth/admin/roles/{role['id']}/permissions/{perm['id']}"
    assert (await client.post(grant, headers=h)).is_success
    row = await one(db, AuditAction.ROLE_PERMISSION_GRANT, target_id=role["id"], **actor)
    assert row["details"] == {"permission": "a:c"}
    assert (await client.delete(grant, headers=h)).is_success
    await one(db, AuditAction.ROLE_PERMISSION_REVOKE, target_id=role["id"], **actor)

    assign = f"/auth/admin/clients/{cid}/roles/{role['id']}"
    assert (await client.post(assign, headers=h)).is_success
    await one(db, AuditAction.CLIENT_ROLE_ASSIGN, target_id=cid, **actor)
    assert (await client.delete(assign, headers=h)).is_success
    await one(db, AuditAction.CLIENT_ROLE_REMOVE, target_id=cid, **actor)

    user_id = await create_profile(app)
    uassign = f"/auth/admin/users/{user_id}/roles/{role['id']}"
    assert (await client.post(uassign, headers=h)).is_success
    await one(db, AuditAction.USER_ROLE_ASSIGN, target_kind="user", target_id=str(user_id), **actor)
    assert (await client.delete(uassign, headers=h)).is_success
    await one(db, AuditAction.USER_ROLE_REMOVE, target_id=str(user_id), **actor)
    assert (await client.delete(f"/auth/admin/users/{user_id}", headers=h)).status_code == 204
    await one(db, AuditAction.USER_DELETE, target_id=str(user_id), **actor)

    assert (await client.delete(f"/auth/admin/roles/{role['id']}", headers=h)).status_code == 204
    await one(db, AuditAction.ROLE_DELETE, target_id=role["id"], **actor)
    assert (
        await client.delete(f"/auth/admin/permissions/{perm['id']}", headers=h)
    ).status_code == 204
    await one(db, AuditAction.PERMISSION_DELETE, target_id=perm["id"], **actor)
    assert (await client.delete(f"/auth/admin/clients/{cid}", headers=h)).status_code == 204
    await one(db, AuditAction.CLIENT_DELETE, target_id=cid, **actor)

    # Every event is a JSON log line too.
    logged = [r for r in caplog.records if r.name == "auth_service.audit"]
    assert {getattr(r, "audit_action", None) for r in logged} >= {
        "client.create",
        "role.permission_grant",
        "user.delete",
    }
    assert_no_secret(
        await events(db),
        caplog.text + json.dumps([r.__dict__ for r in logged], default=str),
        [admin_secret, admin_token, created["client_secret"], rotated["client_secret"]],
    )


async def test_a_rolled_back_change_leaves_no_event(app: FastAPI, db: AsyncSession) -> None:
    async with app.state.session_factory() as session:
        await RbacService(session).create_role(RoleWrite(name="doomed", description=None))
        assert len(await events(db, "role.create")) == 0  # not visible before commit
        await session.rollback()
    assert await events(db, "role.create") == []


async def test_a_refused_request_rolls_back_its_change_but_keeps_the_denial(
    app: FastAPI, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    # A failed COMMIT-less request: the 409 rolls the transaction back.
    h = await admin_headers(app, client)
    first = await client.post("/auth/admin/roles", json={"name": "dup"}, headers=h)
    assert first.status_code == 201
    again = await client.post("/auth/admin/roles", json={"name": "dup"}, headers=h)
    assert again.status_code == 409
    assert len(await events(db, "role.create")) == 1


async def test_the_table_is_append_only(app: FastAPI, db: AsyncSession) -> None:
    async with app.state.session_factory.begin() as session:
        await RbacService(session).create_role(RoleWrite(name="r1", description=None))
    for statement in (
        "UPDATE auth_service_data.audit_events SET outcome = 'denied'",
        "DELETE FROM auth_service_data.audit_events",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            await db.execute(text(statement))
        await db.rollback()
    assert len(await events(db, "role.create")) == 1


async def test_prune_removes_only_old_events_despite_append_only(
    app: FastAPI, db: AsyncSession
) -> None:
    await db.execute(
        text(
            "INSERT INTO auth_service_data.audit_events"
            " (occurred_at, actor_kind, action, outcome)"
            " VALUES (now() - interval '100 days', 'system', 'role.create', 'success'),"
            "        (now() - interval '10 days', 'system', 'role.update', 'success')"
        )
    )
    await db.commit()
    removed = await prune(app.state.settings, 90 * 86_400)
    assert removed == 1
    left = [e["action"] for e in await events(db)]
    assert left == ["role.update", "audit.prune"]
    row = await one(db, AuditAction.AUDIT_PRUNE, actor_kind="operator")
    assert row["details"]["removed"] == 1
    # The guard still holds after a prune in the same session.
    with pytest.raises(DBAPIError, match="append-only"):
        await db.execute(text("DELETE FROM auth_service_data.audit_events"))
    await db.rollback()


async def run_cli(monkeypatch: pytest.MonkeyPatch, database_url: str, *argv: str) -> Any:
    monkeypatch.setenv("AUTH_SERVICE_DATABASE_URL", database_url)
    out = io.StringIO()

    def call() -> int:
        with contextlib.redirect_stdout(out):
            return main(list(argv))

    assert await asyncio.to_thread(call) == 0
    return json.loads(out.getvalue().strip())


async def test_operator_commands(
    app: FastAPI, db: AsyncSession, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rotated = await run_cli(monkeypatch, database_url, "keys", "rotate")
    await one(db, AuditAction.KEY_ROTATE, actor_kind="operator", target_id=rotated["kid"])
    await run_cli(monkeypatch, database_url, "keys", "remove", rotated["kid"])
    await one(db, AuditAction.KEY_REMOVE, actor_kind="operator", target_id=rotated["kid"])
    user_id = str(uuid.uuid4())
    await run_cli(
        monkeypatch, database_url, "rbac", "assign-role", "--user-id", user_id, "--role", "admin"
    )
    await one(db, AuditAction.USER_ROLE_ASSIGN, actor_kind="operator", target_id=user_id)
    pruned = await run_cli(monkeypatch, database_url, "audit", "prune", "--older-than", "90d")
    assert pruned == {"removed": 0}


async def test_bootstrap_of_the_initial_admin(
    database_url: str, db: AsyncSession, gotrue: GoTrueStandIn
) -> None:
    settings = make_settings(
        auth_service_database_url=database_url,
        initial_admin_email="root@example.com",
        initial_admin_password="Initial-admin-1",
        **supabase_overrides(gotrue),
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        pass
    user = gotrue.user_by_email("root@example.com")
    assert user is not None
    await one(db, AuditAction.RBAC_BOOTSTRAP, actor_kind="system", target_id=str(user.id))
    assert_no_secret(await events(db), "", ["Initial-admin-1"])


@pytest.fixture
async def users_client(
    database_url: str, redis_url: str | None, gotrue: GoTrueStandIn, clean_db: None
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        auth_service_database_url=database_url, redis_url=redis_url, **supabase_overrides(gotrue)
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def test_human_sign_in(
    users_client: httpx.AsyncClient, db: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "auth_service.audit")
    client = users_client
    email = "audited@example.com"
    registered = await register_user(client, email)
    uid = registered["user"]["id"]
    user = {"actor_kind": "user", "actor_id": uid, "target_id": uid}
    await one(db, AuditAction.USER_REGISTER, outcome="success", **user)

    wrong = "Wrong-password-9"
    bad = await client.post("/auth/users/login", json={"email": email, "password": wrong})
    assert bad.status_code == 401
    failed = await one(db, AuditAction.USER_LOGIN, outcome="failed")
    assert failed["details"]["reason"] == "invalid_credentials"
    assert failed["actor_id"] is None
    assert email not in json.dumps(failed["details"])
    session = await login_user(client, email)
    await one(db, AuditAction.USER_LOGIN, outcome="success", **user)
    h = bearer(session["access_token"])

    enrolled = (await client.post("/auth/users/mfa/enroll", json={}, headers=h)).json()
    await one(db, AuditAction.USER_MFA_ENROLL, outcome="success", **user)
    factor = enrolled["factor_id"]
    challenge = (
        await client.post("/auth/users/mfa/challenge", json={"factor_id": factor}, headers=h)
    ).json()
    verify = {"factor_id": factor, "challenge_id": challenge["challenge_id"], "code": "000000"}
    assert (await client.post("/auth/users/mfa/verify", json=verify, headers=h)).status_code == 401
    await one(db, AuditAction.USER_MFA_VERIFY, outcome="failed", **user)
    challenge = (
        await client.post("/auth/users/mfa/challenge", json={"factor_id": factor}, headers=h)
    ).json()
    code = pyotp.TOTP(enrolled["totp"]["secret"]).now()
    verify = {"factor_id": factor, "challenge_id": challenge["challenge_id"], "code": code}
    aal2 = (await client.post("/auth/users/mfa/verify", json=verify, headers=h)).json()
    await one(db, AuditAction.USER_MFA_VERIFY, outcome="success", **user)
    h2 = bearer(aal2["access_token"])
    assert (await client.delete(f"/auth/users/mfa/factors/{factor}", headers=h2)).status_code == 204
    await one(db, AuditAction.USER_MFA_UNENROLL, outcome="success", **user)

    new_password = "Another-horse-2"
    updated = await client.post(
        "/auth/users/password/update", json={"password": new_password}, headers=h2
    )
    assert updated.status_code in (200, 204), updated.text
    await one(db, AuditAction.USER_PASSWORD_UPDATE, outcome="success", **user)
    reset = await client.post("/auth/users/password/reset", json={"email": email})
    assert reset.status_code == 202, reset.text
    await one(db, AuditAction.USER_PASSWORD_RESET, outcome="success")
    assert (await client.post("/auth/users/logout", headers=h2)).status_code == 204
    await one(db, AuditAction.USER_LOGOUT, outcome="success", **user)

    assert_no_secret(
        await events(db),
        caplog.text,
        [
            USER_PASSWORD,
            wrong,
            new_password,
            session["access_token"],
            session["refresh_token"],
            aal2["access_token"],
            enrolled["totp"]["secret"],
            code,
        ],
    )


async def test_machine_tokens(
    app: FastAPI, client: httpx.AsyncClient, db: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "auth_service.audit")
    cid, secret = await create_client(app, roles=["service"])
    token = await client_token(client, cid, secret)
    wrong = "acs_wrong-secret-value"
    refused = await client.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "client_id": str(cid), "client_secret": wrong},
    )
    assert refused.status_code == 401
    await one(db, AuditAction.CLIENT_AUTH_FAILED, outcome="failed", target_id=str(cid))
    revoked = await client.post(
        "/auth/token/revoke",
        data={"token": token, "client_id": str(cid), "client_secret": secret},
    )
    assert revoked.status_code == 200
    await one(db, AuditAction.TOKEN_REVOKE, actor_kind="client", actor_id=str(cid))
    # A successful grant is counted in metrics, never written per grant.
    assert [e for e in await events(db) if e["action"].startswith("token.grant")] == []
    assert_no_secret(await events(db), caplog.text, [secret, token, wrong])


async def test_rate_limit_trips(
    database_url: str, redis_url: str | None, db: AsyncSession, clean_db: None
) -> None:
    settings = make_settings(
        auth_service_database_url=database_url, redis_url=redis_url, rate_limit_token="1/minute"
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            grant = {"grant_type": "client_credentials"}
            statuses = [(await c.post("/auth/token", data=grant)).status_code for _ in range(4)]
    assert statuses[-1] == 429
    trips = await events(db, "access.rate_limited")
    # Recorded once per key per minute, not once per refused request.
    assert len(trips) == 1
    assert trips[0]["outcome"] == "denied"
    assert trips[0]["client_ip"] == "127.0.0.7"


async def test_the_endpoint_filters_and_pages_newest_first(
    app: FastAPI, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    h = await admin_headers(app, client)
    for i in range(5):
        assert (
            await client.post("/auth/admin/roles", json={"name": f"r{i}"}, headers=h)
        ).is_success
    url = "/auth/admin/audit-events"
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"action": "role.create", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = await client.get(url, params=params, headers=h)
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5
    assert seen == sorted(seen, reverse=True)
    assert len(set(seen)) == 5

    only_denied = await client.get(url, params={"outcome": "denied"}, headers=h)
    assert only_denied.json()["items"] == []
    future = await client.get(url, params={"since": "2999-01-01T00:00:00Z"}, headers=h)
    assert future.json()["items"] == []
    by_target = await client.get(url, params={"target_kind": "role", "limit": 200}, headers=h)
    assert len(by_target.json()["items"]) == 5
    assert (await client.get(url, params={"cursor": "garbage!"}, headers=h)).status_code == 422
    # A cursor is a position, `<microseconds since the epoch>.<id>`: any one is answered.
    before_all = await client.get(url, params={"cursor": "0.0"}, headers=h)
    assert before_all.status_code == 200
    assert before_all.json()["items"] == []
    after_all = await client.get(
        url, params={"cursor": "9999999999999999.1", "action": "role.create"}, headers=h
    )
    assert [item["id"] for item in after_all.json()["items"]] == seen
    assert (await client.get(url, params={"action": "nope"}, headers=h)).status_code == 422
    # since/until are RFC 3339 date-times with an offset, as the schema says: not Unix times,
    # not local times; an instant beyond datetime's range is simply before every event.
    for loose in ("0.5", "2000-01-01T00:00:00", "2000-01-01"):
        assert (await client.get(url, params={"until": loose}, headers=h)).status_code == 422
    edge = await client.get(url, params={"since": "0001-01-01T00:00:00+05:00"}, headers=h)
    assert edge.status_code == 200
    assert len(edge.json()["items"]) > 0

    reader = await admin_headers(app, client, roles=["service"])
    refused = await client.get(url, headers=reader)
    assert refused.status_code == 403
    assert refused.json()["error"] == "insufficient_permissions"
