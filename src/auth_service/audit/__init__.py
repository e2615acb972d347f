"""The audit log: who did what, to what, with which outcome (docs/audit.md).

Any domain records an event with one call, in the same transaction as the change:

    await audit.record(session, AuditEvent(AuditAction.CLIENT_CREATE, actor, target=...))
"""

from auth_service.audit.service import (
    AuditAction,
    AuditEvent,
    Outcome,
    Target,
    record,
    record_detached,
)

__all__ = ["AuditAction", "AuditEvent", "Outcome", "Target", "record", "record_detached"]
