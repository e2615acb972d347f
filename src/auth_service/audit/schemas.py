"""Bodies of the audit-log endpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: datetime
    actor_kind: str = Field(description="`user`, `client`, `operator` (the CLI) or `system`.")
    actor_id: str | None
    action: str = Field(description="One of the actions listed in docs/audit.md.")
    target_kind: str | None
    target_id: str | None
    outcome: str = Field(description="`success`, `denied` or `failed`.")
    client_ip: str | None
    user_agent: str | None
    request_id: str | None
    details: dict[str, Any]


class AuditEventPage(BaseModel):
    items: list[AuditEventRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next (older) page; null on the last page."
    )


# A keyset position, `<microseconds since the epoch>.<event id>`: every string the pattern
# admits is a position (events older than it), so the schema says exactly what is accepted.
CURSOR_PATTERN = r"^[0-9]{1,16}\.[0-9]{1,18}$"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def encode_cursor(occurred_at: datetime, event_id: int) -> str:
    return f"{(occurred_at - _EPOCH) // _MICROSECOND}.{event_id}"


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """A cursor that matched CURSOR_PATTERN (16 digits of microseconds stay below year 2287)."""
    micros, _, event_id = cursor.partition(".")
    return _EPOCH + int(micros) * _MICROSECOND, int(event_id)
