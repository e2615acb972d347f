"""Who performs a change: the one value the privilege ceiling and the audit log both read.

Endpoints build an `Actor` from the authenticated principal; operator commands (the CLI) and
startup code use `OPERATOR` / `SYSTEM`, which are not bounded by a privilege ceiling but are
still recorded in the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ActorKind(StrEnum):
    USER = "user"
    CLIENT = "client"
    OPERATOR = "operator"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Actor:
    kind: ActorKind
    id: str | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    # None: not bounded (operator and system); a set: the ceiling of what it may hand out.
    permissions: frozenset[str] | None = None

    @property
    def bounded(self) -> bool:
        return self.permissions is not None

    def missing(self, needed: frozenset[str] | set[str]) -> list[str]:
        """The permissions in `needed` this actor does not hold, sorted."""
        if self.permissions is None:
            return []
        return sorted(set(needed) - self.permissions)

    def holds_role(self, role: str) -> bool:
        return self.permissions is None or role in self.roles


OPERATOR = Actor(ActorKind.OPERATOR, "cli")
SYSTEM = Actor(ActorKind.SYSTEM, "auth_service")
