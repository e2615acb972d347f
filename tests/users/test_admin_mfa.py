"""aal2 for human admins (issue 9): a verified factor means admin endpoints want aal2."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pyotp
from fastapi import FastAPI
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.rbac.models import Role
from tests.factories import admin_headers, login_user, register_user

AppWith = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _admin_user(client: httpx.AsyncClient, db: AsyncSession, email: str) -> str:
    app: FastAPI = client.app  # type: ignore[attr-defined]
    user_id: str = (await register_user(client, email))["user"]["id"]
    admin_role = await db.scalar(select(Role.id).where(Role.name == "admin"))
    granted = await client.post(
        f"/auth/admin/users/{user_id}/roles/{admin_role}", headers=await admin_headers(app, client)
    )
    assert granted.status_code == 200, granted.text
    return user_id


async def _enroll_and_verify(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    h = bearer(token)
    factor = (await client.post("/auth/users/mfa/enroll", json={}, headers=h)).json()
    challenge = (
        await client.post(
            "/auth/users/mfa/challenge", json={"factor_id": factor["factor_id"]}, headers=h
        )
    ).json()
    verified = await client.post(
        "/auth/users/mfa/verify",
        json={
            "factor_id": factor["factor_id"],
            "challenge_id": challenge["challenge_id"],
            "code": pyotp.TOTP(factor["totp"]["secret"]).now(),
        },
        headers=h,
    )
    assert verified.status_code == 200, verified.text
    body: dict[str, Any] = verified.json()
    return body


async def test_an_aal1_session_of_an_admin_with_a_factor_is_refused_and_aal2_accepted(
    app_with: AppWith, db: AsyncSession
) -> None:
    async with app_with(admin_mfa_factor_cache_seconds=0) as client:
        email = "mfa-admin@example.com"
        user_id = await _admin_user(client, db, email)
        aal1 = (await login_user(client, email))["access_token"]
        target = f"/auth/admin/users/{user_id}"
        # No factor yet and MFA not required outside production: aal1 is enough.
        assert (await client.get(target, headers=bearer(aal1))).status_code == 200

        aal2 = (await _enroll_and_verify(client, aal1))["access_token"]
        refused = await client.get(target, headers=bearer(aal1))
        assert refused.status_code == 403
        body = refused.json()
        assert body["error"] == "mfa_required"
        assert body["details"]["current_aal"] == "aal1"
        assert "/auth/users/mfa/challenge" in body["details"]["hint"]
        # A fresh password login is still aal1: refused too.
        again = (await login_user(client, email))["access_token"]
        assert (await client.get(target, headers=bearer(again))).status_code == 403
        assert (await client.get(target, headers=bearer(aal2))).status_code == 200

        denied = await db.execute(
            text(
                "SELECT outcome FROM auth_service_data.audit_events"
                " WHERE action = 'access.mfa_required' AND actor_id = :u"
            ),
            {"u": user_id},
        )
        assert [row[0] for row in denied] == ["denied", "denied"]


async def test_admin_require_mfa_refuses_an_admin_without_any_factor(
    app_with: AppWith, db: AsyncSession
) -> None:
    async with app_with(admin_require_mfa=True) as client:
        email = f"nofactor-{uuid.uuid4().hex[:6]}@example.com"
        user_id = await _admin_user(client, db, email)
        token = (await login_user(client, email))["access_token"]
        refused = await client.get(f"/auth/admin/users/{user_id}", headers=bearer(token))
        assert refused.status_code == 403
        assert refused.json()["error"] == "mfa_required"
        assert "enroll" in refused.json()["details"]["hint"]
        # The user's own endpoints are not admin endpoints: still usable, e.g. to enroll.
        assert (await client.get("/auth/users/me", headers=bearer(token))).status_code == 200
        aal2 = (await _enroll_and_verify(client, token))["access_token"]
        ok = await client.get(f"/auth/admin/users/{user_id}", headers=bearer(aal2))
        assert ok.status_code == 200, ok.text
        # Machine clients are not affected by ADMIN_REQUIRE_MFA.
        app: FastAPI = client.app  # type: ignore[attr-defined]
        machine = await client.get(
            f"/auth/admin/users/{user_id}", headers=await admin_headers(app, client)
        )
        assert machine.status_code == 200


def test_admin_require_mfa_defaults_to_true_in_production_only() -> None:
    from tests.core.test_config import _production

    assert _production().admin_require_mfa is True
    assert _production(admin_require_mfa=False).admin_require_mfa is False
    from tests.conftest import make_settings

    assert make_settings().admin_require_mfa is False
