"""Profiles: created on every path that first sees a user; register is all-or-nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from auth_service.users.models import Profile
from tests.factories import USER_PASSWORD, login_user, register_user
from tests.support.gotrue import GoTrueStandIn


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def profile(db: AsyncSession, user_id: str | uuid.UUID) -> Profile | None:
    db.expire_all()
    return await db.scalar(select(Profile).where(Profile.user_id == uuid.UUID(str(user_id))))


async def test_register_creates_the_profile_with_its_fields(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    body = await register_user(
        client, "p@example.com", username="pat", first_name="Pat", last_name="Lee"
    )
    row = await profile(db, body["user"]["id"])
    assert row is not None
    assert (row.username, row.first_name, row.last_name) == ("pat", "Pat", "Lee")


async def test_failed_profile_write_undoes_the_signup_and_a_retry_succeeds(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn, db: AsyncSession
) -> None:
    await register_user(client, "first@example.com", username="taken")
    response = await client.post(
        "/auth/users/register",
        json={"email": "second@example.com", "password": USER_PASSWORD, "username": "taken"},
    )
    assert response.status_code == 409
    assert response.json()["error"] == "username_taken"
    # Nothing half-done: no Supabase user, no profile.
    assert gotrue.user_by_email("second@example.com") is None
    assert await db.scalar(select(func.count()).select_from(Profile)) == 1

    retry = await register_user(client, "second@example.com", username="free")
    assert retry["status"] == "registered"
    assert (await profile(db, retry["user"]["id"])) is not None


async def test_login_creates_the_profile_for_users_made_elsewhere(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn, db: AsyncSession
) -> None:
    user = gotrue.create_user("elsewhere@example.com", USER_PASSWORD)
    assert await profile(db, user.id) is None
    await login_user(client, "elsewhere@example.com")
    assert await profile(db, user.id) is not None


async def test_me_creates_the_profile_lazily(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn, db: AsyncSession
) -> None:
    user = gotrue.create_user("lazy@example.com", USER_PASSWORD)
    response = await client.get("/auth/users/me", headers=bearer(gotrue.mint_token(user)))
    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == user.id
    assert response.json()["username"] is None
    assert await profile(db, user.id) is not None


async def test_refresh_and_verify_create_the_profile(
    client: httpx.AsyncClient, gotrue: GoTrueStandIn, db: AsyncSession
) -> None:
    user = gotrue.create_user("refresh@example.com", USER_PASSWORD)
    async with httpx.AsyncClient(base_url=gotrue.issuer) as direct:
        signed_in = await direct.post(
            "/token?grant_type=password",
            json={"email": "refresh@example.com", "password": USER_PASSWORD},
            headers={"apikey": "standin-anon-key"},
        )
    refreshed = await client.post(
        "/auth/users/token/refresh", json={"refresh_token": signed_in.json()["refresh_token"]}
    )
    assert refreshed.status_code == 200
    assert await profile(db, user.id) is not None

    gotrue.create_user("otp@example.com", USER_PASSWORD)
    await client.post("/auth/users/login/magiclink", json={"email": "otp@example.com"})
    mail = gotrue.last_email("otp@example.com")
    verified = await client.post(
        "/auth/users/verify", json={"type": "magiclink", "token_hash": mail["token_hash"]}
    )
    assert verified.status_code == 200
    assert await profile(db, verified.json()["user"]["id"]) is not None


async def test_put_me_updates_and_username_conflict_is_409(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    await register_user(client, "a@example.com", username="alpha")
    await register_user(client, "b@example.com")
    token = (await login_user(client, "b@example.com"))["access_token"]
    updated = await client.put(
        "/auth/users/me", json={"username": "bravo", "first_name": "B"}, headers=bearer(token)
    )
    assert updated.status_code == 200, updated.text
    assert (updated.json()["username"], updated.json()["first_name"]) == ("bravo", "B")
    partial = await client.put("/auth/users/me", json={"last_name": "Z"}, headers=bearer(token))
    assert (partial.json()["username"], partial.json()["last_name"]) == ("bravo", "Z")

    conflict = await client.put("/auth/users/me", json={"username": "alpha"}, headers=bearer(token))
    assert conflict.status_code == 409
    assert conflict.json()["error"] == "username_taken"
    again = await client.get("/auth/users/me", headers=bearer(token))
    assert again.json()["username"] == "bravo"


async def test_put_me_rejects_unknown_and_malformed_fields(client: httpx.AsyncClient) -> None:
    await register_user(client, "v@example.com")
    token = (await login_user(client, "v@example.com"))["access_token"]
    for body in ({"is_active": False}, {"username": "no spaces allowed"}, {"username": "x"}):
        response = await client.put("/auth/users/me", json=body, headers=bearer(token))
        assert response.status_code == 422, body
        assert response.json()["error"] == "validation_error"


@pytest.fixture
async def commit_fails_for_username_boom(engine: AsyncEngine) -> AsyncIterator[None]:
    """A deferred constraint trigger: the insert and flush succeed, the COMMIT fails.

    That is the last moment a registration can break, after Supabase has the user.
    """
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            """
            CREATE FUNCTION auth_service_data.test_refuse_boom() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.username = 'boom' THEN
                    RAISE EXCEPTION 'refused at commit';
                END IF;
                RETURN NEW;
            END $$
            """
        )
        await conn.exec_driver_sql(
            "CREATE CONSTRAINT TRIGGER test_refuse_boom AFTER INSERT ON auth_service_data.profiles"
            " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
            " EXECUTE FUNCTION auth_service_data.test_refuse_boom()"
        )
    try:
        yield
    finally:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
            await conn.exec_driver_sql(
                "DROP TRIGGER test_refuse_boom ON auth_service_data.profiles"
            )
            await conn.exec_driver_sql("DROP FUNCTION auth_service_data.test_refuse_boom()")


async def test_a_failed_commit_of_the_profile_undoes_the_signup_and_a_retry_succeeds(
    client: httpx.AsyncClient,
    gotrue: GoTrueStandIn,
    db: AsyncSession,
    commit_fails_for_username_boom: None,
) -> None:
    response = await client.post(
        "/auth/users/register",
        json={"email": "late@example.com", "password": USER_PASSWORD, "username": "boom"},
    )
    assert response.status_code == 503
    assert response.json()["error"] == "profile_write_failed"
    # Nothing half-done: the Supabase user was removed again and no profile exists.
    assert gotrue.user_by_email("late@example.com") is None
    assert await db.scalar(select(func.count()).select_from(Profile)) == 0

    retry = await register_user(client, "late@example.com", username="fine")
    assert retry["status"] == "registered"
    assert (await profile(db, retry["user"]["id"])) is not None
    await db.rollback()  # end the read transaction, so the trigger can be dropped
