"""oauth2: signing keys, client audiences and secret rotation

Revision ID: 20261126_0002
Revises: 20261126_0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261126_0002"
down_revision: str | None = "20261126_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "auth_service_data"

# Every table the token endpoint's client cache depends on (oauth2/client_cache.py).
NOTIFY_TABLES = ("app_clients", "app_client_roles", "roles", "role_permissions", "permissions")


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("public_jwk", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("private_key_encrypted", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_signing_keys")),
        schema=SCHEMA,
    )
    op.add_column(
        "app_clients",
        sa.Column("previous_secret_hash", sa.String(128), nullable=True),
        schema=SCHEMA,
    )
    op.add_column(
        "app_clients",
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
        schema=SCHEMA,
    )
    op.add_column(
        "app_clients",
        sa.Column(
            "allowed_audiences",
            postgresql.ARRAY(sa.String(255)),
            server_default=sa.text("'{}'::varchar[]"),
            nullable=False,
        ),
        schema=SCHEMA,
    )
    # Tell every replica to drop its cached client credentials after any change.
    op.execute(
        f"""
        CREATE FUNCTION {SCHEMA}.notify_client_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('auth_service_clients', TG_TABLE_NAME);
            RETURN NULL;
        END
        $$
        """
    )
    for table in NOTIFY_TABLES:
        op.execute(
            f"CREATE TRIGGER notify_client_change"
            f" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {SCHEMA}.{table}"
            f" FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.notify_client_change()"
        )


def downgrade() -> None:
    for table in NOTIFY_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS notify_client_change ON {SCHEMA}.{table}")
    op.execute(f"DROP FUNCTION IF EXISTS {SCHEMA}.notify_client_change()")
    op.drop_column("app_clients", "allowed_audiences", schema=SCHEMA)
    op.drop_column("app_clients", "previous_secret_expires_at", schema=SCHEMA)
    op.drop_column("app_clients", "previous_secret_hash", schema=SCHEMA)
    op.drop_table("signing_keys", schema=SCHEMA)
