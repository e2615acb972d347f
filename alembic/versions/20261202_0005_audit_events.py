"""audit: append-only audit_events table, its guard trigger and the prune function

Revision ID: 20261202_0005
Revises: 20261202_0004
Create Date: 2026-12-02

`audit_events` is append-only: a trigger raises on every UPDATE, and on DELETE unless the
transaction went through `audit_events_prune(interval)`, which sets a transaction-local flag
the trigger honours. The trigger holds for the table's owner too (REVOKE does not bind an
owner); UPDATE and DELETE are also revoked from PUBLIC.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261202_0005"
down_revision: str | None = "20261202_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "auth_service_data"

GUARD_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {SCHEMA}.audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND coalesce(current_setting('auth_service.audit_prune', true), '') = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
"""

PRUNE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {SCHEMA}.audit_events_prune(older_than interval) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    removed bigint;
BEGIN
    IF older_than < interval '1 day' THEN
        RAISE EXCEPTION 'audit_events_prune keeps at least one day of events';
    END IF;
    PERFORM set_config('auth_service.audit_prune', 'on', true);
    DELETE FROM {SCHEMA}.audit_events WHERE occurred_at < clock_timestamp() - older_than;
    GET DIAGNOSTICS removed = ROW_COUNT;
    PERFORM set_config('auth_service.audit_prune', '', true);
    RETURN removed;
END
$$;
"""


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.String(128)),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target_kind", sa.String(32)),
        sa.Column("target_id", sa.String(128)),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("client_ip", sa.String(64)),
        sa.Column("user_agent", sa.String(512)),
        sa.Column("request_id", sa.String(128)),
        sa.Column(
            "details",
            postgresql.JSONB(),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
        sa.CheckConstraint(
            "actor_kind IN ('user', 'client', 'operator', 'system')",
            name=op.f("ck_audit_events_actor_kind"),
        ),
        sa.CheckConstraint(
            "outcome IN ('success', 'denied', 'failed')", name=op.f("ck_audit_events_outcome")
        ),
        schema=SCHEMA,
    )
    op.create_index(
        op.f("ix_audit_events_occurred_at_id"),
        "audit_events",
        # Scanned backwards for "newest first".
        ["occurred_at", "id"],
        schema=SCHEMA,
    )
    op.create_index(
        op.f("ix_audit_events_actor"), "audit_events", ["actor_kind", "actor_id"], schema=SCHEMA
    )
    op.create_index(
        op.f("ix_audit_events_target"), "audit_events", ["target_kind", "target_id"], schema=SCHEMA
    )
    op.execute(GUARD_FUNCTION)
    op.execute(
        f"CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE"
        f" ON {SCHEMA}.audit_events FOR EACH ROW"
        f" EXECUTE FUNCTION {SCHEMA}.audit_events_append_only()"
    )
    op.execute(PRUNE_FUNCTION)
    op.execute(f"REVOKE UPDATE, DELETE ON {SCHEMA}.audit_events FROM PUBLIC")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {SCHEMA}.audit_events_prune(interval)")
    op.drop_table("audit_events", schema=SCHEMA)
    op.execute(f"DROP FUNCTION IF EXISTS {SCHEMA}.audit_events_append_only()")
