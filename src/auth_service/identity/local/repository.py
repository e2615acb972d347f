"""Queries of the local identity provider (one repository per session, like every domain)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, text, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.core.db import SCHEMA
from auth_service.identity.local.models import (
    DevMailboxMessage,
    LocalEmailToken,
    LocalIdentity,
    LocalMfaChallenge,
    LocalMfaFactor,
    LocalMfaUsedCode,
    LocalOAuthFlow,
    LocalRefreshToken,
    LocalSession,
    LocalUser,
)

# A TOTP code is accepted one 30 s step either side of now: after this its step can never match
# again, so the row that makes it single-use is no longer needed.
USED_CODE_RETENTION = timedelta(minutes=10)


class LocalIdentityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- users ---------------------------------------------------------------------------
    async def user(self, user_id: uuid.UUID) -> LocalUser | None:
        return await self.session.get(LocalUser, user_id)

    async def user_by_email(self, email: str) -> LocalUser | None:
        return await self.session.scalar(select(LocalUser).where(LocalUser.email == email))

    async def add_user(self, user: LocalUser) -> LocalUser | None:
        """The user, or None when the email is taken (also by a concurrent insert)."""
        try:
            async with self.session.begin_nested():
                self.session.add(user)
                await self.session.flush()
        except IntegrityError:
            return None
        return user

    async def list_users(self, limit: int = 1000) -> Sequence[LocalUser]:
        return (
            await self.session.scalars(select(LocalUser).order_by(LocalUser.email).limit(limit))
        ).all()

    async def delete_user(self, user_id: uuid.UUID) -> bool:
        result = await self.session.execute(delete(LocalUser).where(LocalUser.id == user_id))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def rbac_claims(self, user_id: uuid.UUID) -> dict[str, Any]:
        """The same function the Supabase hook calls, so both providers' tokens agree."""
        value = await self.session.scalar(
            text(f"SELECT {SCHEMA}.get_user_rbac_claims(:user_id)"), {"user_id": user_id}
        )
        return dict(value or {})

    # --- sessions and refresh tokens ----------------------------------------------------
    async def add_session(
        self, user_id: uuid.UUID, aal: str, amr: list[dict[str, Any]]
    ) -> LocalSession:
        row = LocalSession(id=uuid.uuid4(), user_id=user_id, aal=aal, amr=amr)
        self.session.add(row)
        await self.session.flush()
        return row

    async def session_by_id(
        self, session_id: uuid.UUID, *, lock: bool = False
    ) -> LocalSession | None:
        query = select(LocalSession).where(LocalSession.id == session_id)
        if lock:
            query = query.with_for_update()
        return await self.session.scalar(query.execution_options(populate_existing=True))

    async def delete_sessions(
        self, user_id: uuid.UUID, *, only: uuid.UUID | None = None, keep: uuid.UUID | None = None
    ) -> None:
        query = delete(LocalSession).where(LocalSession.user_id == user_id)
        if only is not None:
            query = query.where(LocalSession.id == only)
        if keep is not None:
            query = query.where(LocalSession.id != keep)
        await self.session.execute(query)

    async def add_refresh_token(
        self, session_id: uuid.UUID, parent_id: int | None
    ) -> LocalRefreshToken:
        # The digest is set by the caller once the id (part of the derivation) is known.
        row = LocalRefreshToken(
            session_id=session_id, parent_id=parent_id, token_hash=uuid.uuid4().hex
        )
        self.session.add(row)
        await self.session.flush()
        return row

    async def refresh_token(self, token_hash: str) -> LocalRefreshToken | None:
        return await self.session.scalar(
            select(LocalRefreshToken)
            .where(LocalRefreshToken.token_hash == token_hash)
            .execution_options(populate_existing=True)
        )

    async def active_child(self, token_id: int) -> LocalRefreshToken | None:
        return await self.session.scalar(
            select(LocalRefreshToken).where(
                LocalRefreshToken.parent_id == token_id, LocalRefreshToken.revoked.is_(False)
            )
        )

    async def revoke_family(self, session_id: uuid.UUID) -> None:
        await self.session.execute(
            update(LocalRefreshToken)
            .where(LocalRefreshToken.session_id == session_id)
            .values(revoked=True, updated_at=func.now())
        )

    # --- email tokens and mailbox ---------------------------------------------------------
    async def supersede_email_tokens(self, user_id: uuid.UUID, type_: str) -> None:
        await self.session.execute(
            update(LocalEmailToken)
            .where(
                LocalEmailToken.user_id == user_id,
                LocalEmailToken.type == type_,
                LocalEmailToken.used_at.is_(None),
            )
            .values(used_at=func.now())
        )

    async def add_email_token(self, row: LocalEmailToken) -> None:
        self.session.add(row)
        await self.session.flush()

    async def email_token_by_hash(self, token_hash: str) -> LocalEmailToken | None:
        return await self.session.scalar(
            select(LocalEmailToken)
            .where(LocalEmailToken.token_hash == token_hash)
            .with_for_update()
        )

    async def open_email_tokens(
        self, user_id: uuid.UUID, types: Sequence[str], now: datetime
    ) -> Sequence[LocalEmailToken]:
        return (
            await self.session.scalars(
                select(LocalEmailToken)
                .where(
                    LocalEmailToken.user_id == user_id,
                    LocalEmailToken.type.in_(types),
                    LocalEmailToken.used_at.is_(None),
                    LocalEmailToken.expires_at > now,
                )
                .with_for_update()
            )
        ).all()

    async def mailbox(self, to: str | None = None, limit: int = 50) -> Sequence[DevMailboxMessage]:
        query = select(DevMailboxMessage).order_by(DevMailboxMessage.id.desc()).limit(limit)
        if to:
            query = query.where(DevMailboxMessage.to_address == to)
        return (await self.session.scalars(query)).all()

    # --- MFA --------------------------------------------------------------------------------
    async def add_factor(self, row: LocalMfaFactor) -> None:
        self.session.add(row)
        await self.session.flush()

    async def factor(self, factor_id: uuid.UUID, user_id: uuid.UUID) -> LocalMfaFactor | None:
        return await self.session.scalar(
            select(LocalMfaFactor).where(
                LocalMfaFactor.id == factor_id, LocalMfaFactor.user_id == user_id
            )
        )

    async def factors(self, user_id: uuid.UUID) -> Sequence[LocalMfaFactor]:
        return (
            await self.session.scalars(
                select(LocalMfaFactor)
                .where(LocalMfaFactor.user_id == user_id)
                .order_by(LocalMfaFactor.created_at)
            )
        ).all()

    async def has_verified_factor(self, user_id: uuid.UUID) -> bool:
        found = await self.session.scalar(
            select(LocalMfaFactor.id)
            .where(LocalMfaFactor.user_id == user_id, LocalMfaFactor.status == "verified")
            .limit(1)
        )
        return found is not None

    async def delete_factor(self, factor_id: uuid.UUID) -> None:
        await self.session.execute(delete(LocalMfaFactor).where(LocalMfaFactor.id == factor_id))

    async def add_challenge(self, row: LocalMfaChallenge) -> None:
        self.session.add(row)
        await self.session.flush()

    async def challenge(
        self, challenge_id: uuid.UUID, factor_id: uuid.UUID
    ) -> LocalMfaChallenge | None:
        return await self.session.scalar(
            select(LocalMfaChallenge)
            .where(LocalMfaChallenge.id == challenge_id, LocalMfaChallenge.factor_id == factor_id)
            .with_for_update()
        )

    async def use_code(self, factor_id: uuid.UUID, counter: int) -> bool:
        """False when this time step was already answered (codes are single-use)."""
        try:
            async with self.session.begin_nested():
                self.session.add(LocalMfaUsedCode(factor_id=factor_id, counter=counter))
                await self.session.flush()
        except IntegrityError:
            return False
        return True

    # --- upstream identities and OAuth flows ----------------------------------------------
    async def identity(self, provider: str, subject: str) -> LocalIdentity | None:
        return await self.session.get(LocalIdentity, (provider, subject))

    async def add_identity(self, row: LocalIdentity) -> None:
        self.session.add(row)
        await self.session.flush()

    async def add_flow(self, row: LocalOAuthFlow) -> None:
        self.session.add(row)
        await self.session.flush()

    async def flow_by_state(self, state: str) -> LocalOAuthFlow | None:
        return await self.session.scalar(
            select(LocalOAuthFlow).where(LocalOAuthFlow.state == state).with_for_update()
        )

    async def flow_by_code(self, code_hash: str) -> LocalOAuthFlow | None:
        return await self.session.scalar(
            select(LocalOAuthFlow)
            .where(LocalOAuthFlow.auth_code_hash == code_hash)
            .with_for_update()
        )

    async def delete_flow(self, flow: LocalOAuthFlow) -> None:
        await self.session.delete(flow)

    # --- pruning ------------------------------------------------------------------------------
    async def prune_expired(self, batch: int) -> dict[str, int]:
        """Deletes at most `batch` rows per table that can never be used again: expired OAuth
        flows, email tokens and MFA challenges, and old used-code markers. Rows another
        transaction holds (a verification in progress) are skipped, not waited for. Answers
        the rows deleted per table."""
        deleted: dict[str, int] = {}
        for model in (LocalOAuthFlow, LocalEmailToken, LocalMfaChallenge):
            doomed = (
                select(model.id)
                .where(model.expires_at <= func.now())
                .limit(batch)
                .with_for_update(skip_locked=True)
            )
            result = await self.session.execute(delete(model).where(model.id.in_(doomed)))
            deleted[model.__tablename__] = int(result.rowcount or 0)  # type: ignore[attr-defined]
        codes = (
            select(LocalMfaUsedCode.factor_id, LocalMfaUsedCode.counter)
            .where(LocalMfaUsedCode.created_at <= func.now() - USED_CODE_RETENTION)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
        result = await self.session.execute(
            delete(LocalMfaUsedCode).where(
                tuple_(LocalMfaUsedCode.factor_id, LocalMfaUsedCode.counter).in_(codes)
            )
        )
        deleted[LocalMfaUsedCode.__tablename__] = int(result.rowcount or 0)  # type: ignore[attr-defined]
        return deleted
