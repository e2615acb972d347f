"""`auth-service audit prune --older-than 90d`."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from typing import Any

from auth_service import audit
from auth_service.audit import AuditAction, AuditEvent, Target
from auth_service.audit.repository import AuditRepository
from auth_service.config import Settings
from auth_service.core.actor import OPERATOR
from auth_service.core.db import create_engine, create_session_factory

_UNITS = {"d": 86_400, "h": 3_600}
_DURATION = re.compile(r"^([1-9][0-9]{0,5})([dh])$")


def parse_duration(text: str) -> int:
    """`90d` or `36h` as seconds; at least one day (the database function refuses less)."""
    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError("use a number of days or hours, e.g. 90d or 48h")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 86_400:
        raise argparse.ArgumentTypeError("keep at least one day of events")
    return seconds


def register(sub: Any) -> None:  # argparse's _SubParsersAction is private API
    parser = sub.add_parser("audit", help="the audit log")
    commands = parser.add_subparsers(dest="audit_command", required=True)
    prune = commands.add_parser("prune", help="delete audit events older than a duration")
    prune.add_argument("--older-than", type=parse_duration, required=True, help="e.g. 90d")
    prune.set_defaults(func=_cmd_prune)


async def prune(settings: Settings, older_than_seconds: int) -> int:
    if not settings.auth_service_database_url:
        raise ValueError("AUTH_SERVICE_DATABASE_URL is not set")
    engine = create_engine(settings.auth_service_database_url, pool_size=1, max_overflow=0)
    try:
        async with create_session_factory(engine).begin() as session:
            removed = await AuditRepository(session).prune(older_than_seconds)
            # The prune itself is an event: the log says who shortened it, and by how much.
            await audit.record(
                session,
                AuditEvent(
                    AuditAction.AUDIT_PRUNE,
                    OPERATOR,
                    Target("audit_events"),
                    details={"older_than_seconds": older_than_seconds, "removed": removed},
                ),
            )
        return removed
    finally:
        await engine.dispose()


def _cmd_prune(args: argparse.Namespace) -> int:
    try:
        removed = asyncio.run(prune(Settings(), args.older_than))
    except ValueError as exc:
        print(f"auth-service: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"removed": removed}))
    return 0
