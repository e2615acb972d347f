"""Expired rows of the local provider are pruned in bounded batches; live ones stay."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_service.identity.local.models import (
    LocalEmailToken,
    LocalMfaChallenge,
    LocalMfaFactor,
    LocalMfaUsedCode,
    LocalOAuthFlow,
    LocalUser,
)
from auth_service.identity.local.pruning import LocalPruner
from tests.factories import register_user
from tests.identity.test_local_provider import App, app_of, local_app  # noqa: F401

PAST = timedelta(minutes=-1)
FUTURE = timedelta(hours=1)


def _factory(client: httpx.AsyncClient) -> async_sessionmaker[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = app_of(client).state.session_factory
    return factory


async def _user_id(client: httpx.AsyncClient, email: str) -> uuid.UUID:
    await register_user(client, email)
    async with _factory(client)() as session:
        user_id = await session.scalar(select(LocalUser.id).where(LocalUser.email == email))
    assert user_id is not None
    return user_id


def _email_token(user_id: uuid.UUID, expires_in: timedelta) -> LocalEmailToken:
    return LocalEmailToken(
        user_id=user_id,
        type="magiclink",
        token_hash=secrets.token_hex(32),
        otp_hash=secrets.token_hex(32),
        expires_at=datetime.now(UTC) + expires_in,
    )


def _flow(expires_in: timedelta) -> LocalOAuthFlow:
    return LocalOAuthFlow(
        provider="upstream",
        state=secrets.token_hex(16),
        nonce=secrets.token_hex(16),
        upstream_verifier=secrets.token_hex(32),
        code_challenge=secrets.token_hex(32),
        redirect_to="https://app.example.com/auth",
        expires_at=datetime.now(UTC) + expires_in,
    )


async def _count(client: httpx.AsyncClient, model: type, *where: object) -> int:
    async with _factory(client)() as session:
        value = await session.scalar(select(func.count()).select_from(model).where(*where))  # type: ignore[arg-type]
    return int(value or 0)


async def test_expired_flows_email_tokens_challenges_and_old_codes_go_live_ones_stay(
    local_app: App,  # noqa: F811
) -> None:
    async with local_app() as c:
        user_id = await _user_id(c, "prune@example.com")
        factor_id = uuid.uuid4()
        async with _factory(c).begin() as session:
            session.add(LocalMfaFactor(id=factor_id, user_id=user_id, secret_encrypted="x"))
            await session.flush()
            for expires_in in (PAST, FUTURE):
                session.add(_email_token(user_id, expires_in))
                session.add(_flow(expires_in))
                session.add(
                    LocalMfaChallenge(
                        factor_id=factor_id, expires_at=datetime.now(UTC) + expires_in
                    )
                )
            session.add(LocalMfaUsedCode(factor_id=factor_id, counter=1))
            session.add(LocalMfaUsedCode(factor_id=factor_id, counter=2))
        async with _factory(c).begin() as session:
            # A marker old enough that its time step can never match again.
            await session.execute(
                text(
                    "UPDATE auth_service_data.local_mfa_used_codes"
                    " SET created_at = now() - interval '1 hour' WHERE counter = 1"
                )
            )

        assert await LocalPruner(_factory(c), 300).prune() == 4

        now = datetime.now(UTC)
        for model in (LocalEmailToken, LocalOAuthFlow, LocalMfaChallenge):
            assert await _count(c, model, model.expires_at <= now) == 0, model
            assert await _count(c, model, model.expires_at > now) == 1, model
        assert await _count(c, LocalMfaUsedCode, LocalMfaUsedCode.counter == 1) == 0
        assert await _count(c, LocalMfaUsedCode, LocalMfaUsedCode.counter == 2) == 1
        # The factor itself and the user are not touched.
        assert await _count(c, LocalMfaFactor, LocalMfaFactor.id == factor_id) == 1
        assert await _count(c, LocalUser, LocalUser.id == user_id) == 1
        # Nothing left to prune.
        assert await LocalPruner(_factory(c), 300).prune() == 0


async def test_a_live_link_still_signs_in_after_a_prune(local_app: App) -> None:  # noqa: F811
    async with local_app() as c:
        user_id = await _user_id(c, "live@example.com")
        async with _factory(c).begin() as session:
            session.add(_email_token(user_id, PAST))
        await c.post("/auth/users/login/magiclink", json={"email": "live@example.com"})
        async with _factory(c)() as session:
            meta = await session.scalar(
                text("SELECT meta FROM auth_service_data.dev_mailbox ORDER BY id DESC LIMIT 1")
            )
        assert await LocalPruner(_factory(c), 300).prune() == 1
        body = {"type": "email", "token_hash": meta["token_hash"]}
        verified = await c.post("/auth/users/verify", json=body)
        assert verified.status_code == 200, verified.text
        assert verified.json()["access_token"]


async def test_one_run_deletes_at_most_its_batches(local_app: App) -> None:  # noqa: F811
    async with local_app() as c:
        user_id = await _user_id(c, "batch@example.com")
        async with _factory(c).begin() as session:
            session.add_all(_email_token(user_id, PAST) for _ in range(5))
        pruner = LocalPruner(_factory(c), 300)
        assert await pruner.prune(batch=2, max_batches=2) == 4
        assert await _count(c, LocalEmailToken, LocalEmailToken.user_id == user_id) == 1
        assert await pruner.prune(batch=2, max_batches=2) == 1
        assert await _count(c, LocalEmailToken, LocalEmailToken.user_id == user_id) == 0


async def test_the_running_service_prunes_on_its_interval(local_app: App) -> None:  # noqa: F811
    async with local_app(local_prune_interval_seconds=0.05) as c:
        user_id = await _user_id(c, "interval@example.com")
        async with _factory(c).begin() as session:
            session.add(_flow(PAST))
            session.add(_email_token(user_id, PAST))

        async def pruned() -> bool:
            flows = await _count(c, LocalOAuthFlow, LocalOAuthFlow.expires_at <= func.now())
            tokens = await _count(c, LocalEmailToken, LocalEmailToken.user_id == user_id)
            return flows == 0 and tokens == 0

        for _ in range(600):  # up to ~30 s for a loaded machine; no timing is asserted
            if await pruned():
                break
            await asyncio.sleep(0.05)
        assert await pruned()
