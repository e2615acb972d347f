"""revocations: the durable denylist (revoked jtis, sessions, user cutoffs) behind the cache

Revision ID: 20261202_0004
Revises: 20261126_0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261202_0004"
down_revision: str | None = "20261126_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "auth_service_data"


def upgrade() -> None:
    op.create_table(
        "revocations",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_revocations")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_revocations_expires_at", "revocations", ["expires_at"], unique=False, schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_index("ix_revocations_expires_at", table_name="revocations", schema=SCHEMA)
    op.drop_table("revocations", schema=SCHEMA)
