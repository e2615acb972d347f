"""Which database objects Alembic may compare and touch: only our schema."""

from __future__ import annotations

from typing import Any

from auth_service.core.db import SCHEMA


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    # Supabase owns auth, storage, realtime, ...: only our schema is ours to diff.
    if type_ == "schema":
        return name == SCHEMA
    return True


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, other: Any) -> bool:
    if type_ == "foreign_key_constraint":
        referred = getattr(getattr(obj, "referred_table", None), "schema", None)
        # Added only where Supabase's auth.users exists; not part of the models.
        return referred != "auth"
    return not (type_ == "table" and getattr(obj, "schema", SCHEMA) not in (SCHEMA, None))
