"""App-client queries."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs published
from sqlalchemy import ColumnClause, delete, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.clients.models import AppClient, AppClientRole
from auth_service.core.errors import ServiceUnavailable
from auth_service.rbac.models import Permission, Role, RolePermission


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """Everything the token endpoint needs about a client, loaded in one round trip."""

    id: uuid.UUID
    secret_hash: str | None  # None: a key-only (private_key_jwt) client
    previous_secret_hash: str | None
    previous_secret_expires_at: datetime | None
    is_active: bool
    allowed_audiences: tuple[str, ...]
    roles: tuple[str, ...]
    permissions: tuple[str, ...]
    auth_method: str = "client_secret_basic"
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    secret_encrypted: str | None = None
    previous_secret_encrypted: str | None = None
    dpop_bound: bool = False


_EMPTY: ColumnClause[Any] = literal_column("'{}'::varchar[]")

# One statement, compiled once and cached by SQLAlchemy: the client row plus its role and
# permission names aggregated, so a grant costs a single query.
_CREDENTIALS_QUERY = (
    select(
        AppClient.id,
        AppClient.client_secret_hash,
        AppClient.previous_secret_hash,
        AppClient.previous_secret_expires_at,
        AppClient.is_active,
        AppClient.allowed_audiences,
        func.coalesce(func.array_agg(Role.name.distinct()).filter(Role.name.is_not(None)), _EMPTY),
        func.coalesce(
            func.array_agg(Permission.name.distinct()).filter(Permission.name.is_not(None)),
            _EMPTY,
        ),
        AppClient.token_endpoint_auth_method,
        AppClient.jwks,
        AppClient.jwks_uri,
        AppClient.client_secret_encrypted,
        AppClient.previous_secret_encrypted,
        AppClient.dpop_bound_access_tokens,
    )
    .select_from(AppClient)
    .outerjoin(AppClientRole, AppClientRole.client_id == AppClient.id)
    .outerjoin(Role, Role.id == AppClientRole.role_id)
    .outerjoin(RolePermission, RolePermission.role_id == Role.id)
    .outerjoin(Permission, Permission.id == RolePermission.permission_id)
    .group_by(AppClient.id)
)


# The same query in SQL for the token hot path, run on asyncpg directly: a prepared statement
# (asyncpg caches it per connection), no ORM, no BEGIN/COMMIT, one round trip.
_CREDENTIALS_SQL = """
SELECT c.id, c.client_secret_hash, c.previous_secret_hash, c.previous_secret_expires_at,
       c.is_active, c.allowed_audiences,
       coalesce(array_agg(DISTINCT r.name) FILTER (WHERE r.name IS NOT NULL), '{}') AS roles,
       coalesce(array_agg(DISTINCT p.name) FILTER (WHERE p.name IS NOT NULL), '{}') AS perms,
       c.token_endpoint_auth_method, c.jwks, c.jwks_uri, c.client_secret_encrypted,
       c.previous_secret_encrypted, c.dpop_bound_access_tokens
FROM auth_service_data.app_clients c
LEFT JOIN auth_service_data.app_client_roles cr ON cr.client_id = c.id
LEFT JOIN auth_service_data.roles r ON r.id = cr.role_id
LEFT JOIN auth_service_data.role_permissions rp ON rp.role_id = r.id
LEFT JOIN auth_service_data.permissions p ON p.id = rp.permission_id
WHERE c.id = $1
GROUP BY c.id
"""
_IS_ACTIVE_SQL = "SELECT is_active FROM auth_service_data.app_clients WHERE id = $1"
# A lost or refused connection is a 503, not a 500 (the SQLAlchemy path has its own handling).
_DATABASE_DOWN = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.QueryCanceledError,
)


def _credentials(row: Sequence[Any]) -> ClientCredentials:
    """One row of the credentials query (asyncpg Record or SQLAlchemy Row) as a value."""
    return ClientCredentials(
        id=row[0],
        secret_hash=row[1],
        previous_secret_hash=row[2],
        previous_secret_expires_at=row[3],
        is_active=row[4],
        allowed_audiences=tuple(row[5]),
        roles=tuple(row[6]),
        permissions=tuple(row[7]),
        auth_method=row[8],
        # asyncpg hands jsonb over as text, SQLAlchemy as a dict.
        jwks=json.loads(row[9]) if isinstance(row[9], str) else row[9],
        jwks_uri=row[10],
        secret_encrypted=row[11],
        previous_secret_encrypted=row[12],
        dpop_bound=row[13],
    )


class ClientCredentialsReader:
    """Read-only client lookups for the OAuth endpoints, on a dedicated asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool, acquire_timeout: float | None = None) -> None:
        self.pool = pool
        self.acquire_timeout = acquire_timeout

    async def credentials(self, client_id: uuid.UUID) -> ClientCredentials | None:
        try:
            async with self.pool.acquire(timeout=self.acquire_timeout) as conn:
                row = await conn.fetchrow(_CREDENTIALS_SQL, client_id)
        except _DATABASE_DOWN as exc:
            raise ServiceUnavailable() from exc
        if row is None:
            return None
        return _credentials(row)

    async def is_active(self, client_id: uuid.UUID) -> bool:
        try:
            async with self.pool.acquire(timeout=self.acquire_timeout) as conn:
                return bool(await conn.fetchval(_IS_ACTIVE_SQL, client_id))
        except _DATABASE_DOWN as exc:
            raise ServiceUnavailable() from exc


class ClientRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def credentials(self, client_id: uuid.UUID) -> ClientCredentials | None:
        row = (
            await self.session.execute(_CREDENTIALS_QUERY.where(AppClient.id == client_id))
        ).first()
        if row is None:
            return None
        return _credentials(row)

    async def is_active(self, client_id: uuid.UUID) -> bool:
        active = await self.session.scalar(
            select(AppClient.is_active).where(AppClient.id == client_id)
        )
        return bool(active)

    async def get(self, client_id: uuid.UUID) -> AppClient | None:
        return await self.session.get(AppClient, client_id)

    async def id_by_name(self, name: str) -> uuid.UUID | None:
        found: uuid.UUID | None = await self.session.scalar(
            select(AppClient.id).where(AppClient.client_name == name)
        )
        return found

    async def get_for_update(self, client_id: uuid.UUID) -> AppClient | None:
        """The row locked until the transaction ends (`SELECT ... FOR UPDATE`), re-read fresh."""
        return await self.session.get(
            AppClient, client_id, with_for_update=True, populate_existing=True
        )

    async def name_taken(self, name: str, *, exclude: uuid.UUID | None = None) -> bool:
        query = select(AppClient.id).where(AppClient.client_name == name)
        if exclude is not None:
            query = query.where(AppClient.id != exclude)
        return (await self.session.scalar(query)) is not None

    async def add(self, client: AppClient) -> AppClient:
        self.session.add(client)
        await self.session.flush()
        await self.session.refresh(client)
        return client

    async def save(self, client: AppClient) -> AppClient:
        await self.session.flush()
        await self.session.refresh(client)
        return client

    async def page(self, *, limit: int, offset: int) -> tuple[Sequence[AppClient], int]:
        total = await self.session.scalar(select(func.count()).select_from(AppClient)) or 0
        items = (
            await self.session.scalars(
                select(AppClient)
                .order_by(AppClient.created_at, AppClient.id)
                .limit(limit)
                .offset(offset)
            )
        ).all()
        return items, total

    async def delete(self, client_id: uuid.UUID) -> bool:
        result = await self.session.execute(
            delete(AppClient).where(AppClient.id == client_id).returning(AppClient.id)
        )
        return result.first() is not None

    async def roles_of(self, client_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[Role]]:
        ids = list(client_ids)
        found: dict[uuid.UUID, list[Role]] = {cid: [] for cid in ids}
        if not ids:
            return found
        rows = await self.session.execute(
            select(AppClientRole.client_id, Role)
            .join(Role, Role.id == AppClientRole.role_id)
            .where(AppClientRole.client_id.in_(ids))
            .order_by(Role.name)
        )
        for client_id, role in rows:
            found[client_id].append(role)
        return found

    async def role(self, role_id: uuid.UUID) -> Role | None:
        return await self.session.get(Role, role_id)

    async def roles_named(self, names: Iterable[str]) -> dict[str, Role]:
        wanted = list(names)
        if not wanted:
            return {}
        roles = await self.session.scalars(select(Role).where(Role.name.in_(wanted)))
        return {role.name: role for role in roles}

    async def add_role(self, client_id: uuid.UUID, role_id: uuid.UUID) -> None:
        await self.session.execute(
            insert(AppClientRole)
            .values(client_id=client_id, role_id=role_id)
            .on_conflict_do_nothing()
        )

    async def remove_role(self, client_id: uuid.UUID, role_id: uuid.UUID) -> bool:
        result = await self.session.execute(
            delete(AppClientRole)
            .where(AppClientRole.client_id == client_id, AppClientRole.role_id == role_id)
            .returning(AppClientRole.role_id)
        )
        return result.first() is not None
