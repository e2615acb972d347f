"""oauth2: client authentication methods, client keys (jwks / jwks_uri), DPoP-bound clients

Revision ID: 20261202_0007
Revises: 20261202_0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261202_0007"
down_revision: str | None = "20261202_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "auth_service_data"
METHODS = ("client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt")


def upgrade() -> None:
    op.add_column(
        "app_clients",
        sa.Column(
            "token_endpoint_auth_method",
            sa.String(32),
            server_default="client_secret_basic",
            nullable=False,
        ),
        schema=SCHEMA,
    )
    op.add_column(
        "app_clients",
        sa.Column("jwks", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        schema=SCHEMA,
    )
    op.add_column("app_clients", sa.Column("jwks_uri", sa.Text(), nullable=True), schema=SCHEMA)
    # client_secret_jwt needs the raw secret to check an HMAC: kept AES-GCM encrypted.
    op.add_column(
        "app_clients",
        sa.Column("client_secret_encrypted", sa.Text(), nullable=True),
        schema=SCHEMA,
    )
    op.add_column(
        "app_clients",
        sa.Column("previous_secret_encrypted", sa.Text(), nullable=True),
        schema=SCHEMA,
    )
    op.add_column(
        "app_clients",
        sa.Column(
            "dpop_bound_access_tokens", sa.Boolean(), server_default=sa.false(), nullable=False
        ),
        schema=SCHEMA,
    )
    # Key-only clients have no secret at all.
    op.alter_column(
        "app_clients", "client_secret_hash", existing_type=sa.String(128), nullable=True,
        schema=SCHEMA,
    )  # fmt: skip
    allowed = ", ".join(f"'{m}'" for m in METHODS)
    op.create_check_constraint(
        op.f("ck_app_clients_token_endpoint_auth_method"),
        "app_clients",
        f"token_endpoint_auth_method IN ({allowed})",
        schema=SCHEMA,
    )
    op.create_check_constraint(
        op.f("ck_app_clients_credentials_match_method"),
        "app_clients",
        "CASE token_endpoint_auth_method"
        " WHEN 'private_key_jwt' THEN client_secret_hash IS NULL"
        " AND (jwks IS NULL) <> (jwks_uri IS NULL)"
        " WHEN 'client_secret_jwt' THEN client_secret_hash IS NOT NULL"
        " AND client_secret_encrypted IS NOT NULL AND jwks IS NULL AND jwks_uri IS NULL"
        " ELSE client_secret_hash IS NOT NULL AND jwks IS NULL AND jwks_uri IS NULL END",
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("ck_app_clients_credentials_match_method"), "app_clients", type_="check", schema=SCHEMA
    )
    op.drop_constraint(
        op.f("ck_app_clients_token_endpoint_auth_method"),
        "app_clients",
        type_="check",
        schema=SCHEMA,
    )
    # Key-only clients cannot survive a schema in which every client has a secret.
    op.execute(f"DELETE FROM {SCHEMA}.app_clients WHERE client_secret_hash IS NULL")
    op.alter_column(
        "app_clients", "client_secret_hash", existing_type=sa.String(128), nullable=False,
        schema=SCHEMA,
    )  # fmt: skip
    for column in (
        "dpop_bound_access_tokens",
        "previous_secret_encrypted",
        "client_secret_encrypted",
        "jwks_uri",
        "jwks",
        "token_endpoint_auth_method",
    ):
        op.drop_column("app_clients", column, schema=SCHEMA)
