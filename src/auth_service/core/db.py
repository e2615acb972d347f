"""Engine, session factory and the request-scoped session that commits or rolls back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from sqlalchemy import MetaData
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

SCHEMA = "auth_service_data"

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA, naming_convention=NAMING_CONVENTION)


def async_database_url(url: str) -> str:
    """Accept the URL forms operators paste (postgres://, postgresql://) and use asyncpg."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.drivername in ("postgresql", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    query = dict(parsed.query)
    # libpq's sslmode means nothing to asyncpg; its `ssl` takes the same values.
    if "sslmode" in query:
        query["ssl"] = query.pop("sslmode")
        parsed = parsed.set(query=query)
    return parsed.render_as_string(hide_password=False)


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    pool_timeout: float = 3.0,
    connect_timeout: float = 3.0,
    statement_timeout: float = 5.0,
) -> AsyncEngine:
    """An engine whose every wait is bounded: pool checkout, connect, and each statement.

    `command_timeout` bounds the client side (a hung or paused server), `statement_timeout`
    the server side; both surface as 503s through `core.errors.dependency_failure`.
    """
    return create_async_engine(
        async_database_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args=connect_args(connect_timeout, statement_timeout),
    )


def connect_args(connect_timeout: float, statement_timeout: float) -> dict[str, Any]:
    """asyncpg connection arguments that bound connecting and every statement."""
    return {
        "timeout": connect_timeout,
        "command_timeout": statement_timeout,
        "server_settings": {"statement_timeout": str(int(statement_timeout * 1000))},
    }


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


class UnitOfWork(Protocol):
    """What a service may do with the request's transaction: make it durable early.

    Only for steps that must be durable before an external side effect is final (a service
    that created something upstream commits its local half to be able to undo the upstream
    half if the commit fails). Everything else leaves committing to `get_session`.
    """

    async def commit(self) -> None: ...


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request: commit when the endpoint returns, roll back when it raises."""
    factory: async_sessionmaker[AsyncSession] = request.app.state.session_factory
    async with factory() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


# scope="function": commit before the response is sent, so a failed commit is never a 200.
DbSession = Annotated[AsyncSession, Depends(get_session, scope="function")]
