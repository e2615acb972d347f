"""Plumbing for operator commands: one session per command, and tables or JSON out.

Commands call the same service functions as the admin API, in one transaction that commits
when the work returns and rolls back when it raises, like the request-scoped session.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.config import Settings
from auth_service.core.db import create_engine, create_session_factory
from auth_service.rbac.bootstrap import seed_core_rbac

T = TypeVar("T")
Work = Callable[[AsyncSession, Settings], Awaitable[T]]


class InvalidInput(ValueError):
    """A command argument broke a rule; the message names the field, never a secret."""


def run_in_session(work: Work[T]) -> T:
    """Run `work` in one transaction on the configured database (core RBAC seeded first)."""

    async def main() -> T:
        settings = Settings()
        if not settings.auth_service_database_url:
            raise ValueError("AUTH_SERVICE_DATABASE_URL is not set")
        engine = create_engine(settings.auth_service_database_url, pool_size=1, max_overflow=0)
        try:
            async with create_session_factory(engine).begin() as session:
                # Core roles exist even if the service never started against this database.
                await seed_core_rbac(session)
                return await work(session, settings)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except ValidationError as exc:  # a request body built from arguments (RoleWrite, ...)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise InvalidInput(problems) from exc


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print JSON (for scripts) instead of a table"
    )


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(_cell(v) for v in value) or "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Rows as aligned columns with a header line."""
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def emit(data: Any, *, as_json: bool, columns: Sequence[str]) -> None:
    """A list as a table or a JSON array; one object as `key  value` lines or a JSON object."""
    if as_json:
        print(json.dumps(data, default=str))
    elif isinstance(data, list):
        print(table(data, columns) if data else "(none)")
    else:
        width = max(len(column) for column in columns)
        for column in columns:
            print(f"{column.ljust(width)}  {_cell(data.get(column))}")
