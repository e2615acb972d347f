"""Bodies of the audit-log endpoint."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from auth_service.core.errors import ValidationFailed


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


class InvalidCursor(ValidationFailed):
    code = "invalid_cursor"
    message = "The cursor is not one this endpoint returned."


def encode_cursor(occurred_at: datetime, event_id: int) -> str:
    raw = f"{occurred_at.isoformat()}|{event_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, _, event_id = raw.partition("|")
        parsed = datetime.fromisoformat(when)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed, int(event_id)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidCursor() from None
