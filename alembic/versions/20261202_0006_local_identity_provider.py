"""local identity provider: users, sessions, refresh tokens, email tokens, MFA, identities

Revision ID: 20261202_0006
Revises: 20261202_0005
Create Date: 2026-12-02

The tables behind IDENTITY_PROVIDER=local. `profiles` and `user_roles` follow a deleted local
user the way they follow `auth.users` on Supabase (ON DELETE CASCADE), but through a trigger
rather than a foreign key: the same database may serve IDENTITY_PROVIDER=supabase, whose users
are not in `local_users`, and a foreign key would refuse their profiles.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261202_0006"
down_revision: str | None = "20261202_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "auth_service_data"


def _ts(name: str, *, nullable: bool = False, default: bool = True) -> sa.Column[object]:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        server_default=sa.func.now() if default else None,
        nullable=nullable,
    )


def _timestamps() -> list[sa.Column[object]]:
    return [_ts("created_at"), _ts("updated_at")]


def _jsonb(name: str, default: str) -> sa.Column[object]:
    return sa.Column(
        name, postgresql.JSONB(), server_default=sa.text(f"'{default}'::jsonb"), nullable=False
    )


def _uuid_pk() -> sa.Column[object]:
    return sa.Column("id", sa.Uuid(), server_default=sa.func.gen_random_uuid(), nullable=False)


def _fk(table: str, column: str, target: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{SCHEMA}.{target}.id"],
        ondelete=ondelete,
        name=op.f(f"fk_{table}_{column}_{target}"),
    )


def _index(table: str, column: str) -> None:
    op.create_index(op.f(f"ix_{SCHEMA}_{table}_{column}"), table, [column], schema=SCHEMA)


CASCADE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {SCHEMA}.local_user_deleted()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $function$
BEGIN
    -- SKIP LOCKED: rows locked by the transaction that is deleting them already (the admin
    -- delete removes our rows first, then the user) must not make us wait on it forever.
    DELETE FROM {SCHEMA}.user_roles WHERE (user_id, role_id) IN (
        SELECT user_id, role_id FROM {SCHEMA}.user_roles
        WHERE user_id = OLD.id FOR UPDATE SKIP LOCKED
    );
    DELETE FROM {SCHEMA}.profiles WHERE user_id IN (
        SELECT user_id FROM {SCHEMA}.profiles WHERE user_id = OLD.id FOR UPDATE SKIP LOCKED
    );
    RETURN OLD;
END;
$function$
"""

CASCADE_TRIGGER = f"""
CREATE TRIGGER local_user_deleted AFTER DELETE ON {SCHEMA}.local_users
FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.local_user_deleted()
"""


def upgrade() -> None:
    op.create_table(
        "local_users",
        _uuid_pk(),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("encrypted_password", sa.Text(), nullable=True),
        _ts("email_confirmed_at", nullable=True, default=False),
        _ts("last_sign_in_at", nullable=True, default=False),
        _ts("banned_until", nullable=True, default=False),
        _jsonb("user_metadata", "{}"),
        _jsonb("app_metadata", "{}"),
        *_timestamps(),
        sa.CheckConstraint("email = lower(email)", name=op.f("ck_local_users_email_lower")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_local_users")),
        sa.UniqueConstraint("email", name=op.f("uq_local_users_email")),
        schema=SCHEMA,
    )
    op.create_table(
        "local_sessions",
        _uuid_pk(),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("aal", sa.String(8), server_default="aal1", nullable=False),
        _jsonb("amr", "[]"),
        *_timestamps(),
        _fk("local_sessions", "user_id", "local_users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_local_sessions")),
        schema=SCHEMA,
    )
    _index("local_sessions", "user_id")
    op.create_table(
        "local_refresh_tokens",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("parent_id", sa.BigInteger(), nullable=True),
        sa.Column("revoked", sa.Boolean(), server_default=sa.false(), nullable=False),
        *_timestamps(),
        _fk("local_refresh_tokens", "session_id", "local_sessions"),
        _fk("local_refresh_tokens", "parent_id", "local_refresh_tokens", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_local_refresh_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_local_refresh_tokens_token_hash")),
        schema=SCHEMA,
    )
    _index("local_refresh_tokens", "session_id")
    op.create_table(
        "local_email_tokens",
        _uuid_pk(),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("otp_hash", sa.String(64), nullable=False),
        _ts("expires_at", default=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        _ts("used_at", nullable=True, default=False),
        _ts("created_at"),
        _fk("local_email_tokens", "user_id", "local_users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_local_email_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_local_email_tokens_token_hash")),
        schema=SCHEMA,
    )
    _index("local_email_tokens", "user_id")
    op.create_table(
        "dev_mailbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("to_address", sa.String(320), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        _jsonb("meta", "{}"),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dev_mailbox")),
        schema=SCHEMA,
    )
    op.create_table(
        "local_mfa_factors",
        _uuid_pk(),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("friendly_name", sa.String(128), nullable=True),
        sa.Column("factor_type", sa.String(16), server_default="totp", nullable=False),
        sa.Column("status", sa.String(16), server_default="unverified", nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        *_timestamps(),
        _fk("local_mfa_factors", "user_id", "local_users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_local_mfa_factors")),
        schema=SCHEMA,
    )
    _index("local_mfa_factors", "user_id")
    op.create_table(
        "local_mfa_challenges",
        _uuid_pk(),
        sa.Column("factor_id", sa.Uuid(), nullable=False),
        _ts("expires_at", default=False),
        _ts("verified_at", nullable=True, default=False),
        _ts("created_at"),
        _fk("local_mfa_challenges", "factor_id", "local_mfa_factors"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_local_mfa_challenges")),
        schema=SCHEMA,
    )
    op.create_table(
        "local_mfa_used_codes",
        sa.Column("factor_id", sa.Uuid(), nullable=False),
        sa.Column("counter", sa.BigInteger(), nullable=False),
        _ts("created_at"),
        _fk("local_mfa_used_codes", "factor_id", "local_mfa_factors"),
        sa.PrimaryKeyConstraint("factor_id", "counter", name=op.f("pk_local_mfa_used_codes")),
        schema=SCHEMA,
    )
    op.create_table(
        "local_identities",
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        _jsonb("claims", "{}"),
        _ts("created_at"),
        _fk("local_identities", "user_id", "local_users"),
        sa.PrimaryKeyConstraint("provider", "subject", name=op.f("pk_local_identities")),
        schema=SCHEMA,
    )
    _index("local_identities", "user_id")
    op.create_table(
        "local_oauth_flows",
        _uuid_pk(),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("state", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("upstream_verifier", sa.String(128), nullable=False),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("redirect_to", sa.Text(), nullable=False),
        sa.Column("auth_code_hash", sa.String(64), nullable=True),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        _ts("expires_at", default=False),
        _ts("created_at"),
        _fk("local_oauth_flows", "user_id", "local_users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_local_oauth_flows")),
        sa.UniqueConstraint("state", name=op.f("uq_local_oauth_flows_state")),
        sa.UniqueConstraint("auth_code_hash", name=op.f("uq_local_oauth_flows_auth_code_hash")),
        schema=SCHEMA,
    )
    op.execute(CASCADE_FUNCTION)
    op.execute(CASCADE_TRIGGER)


def downgrade() -> None:
    op.execute(f"DROP TRIGGER IF EXISTS local_user_deleted ON {SCHEMA}.local_users")
    op.execute(f"DROP FUNCTION IF EXISTS {SCHEMA}.local_user_deleted()")
    for table in (
        "local_oauth_flows",
        "local_identities",
        "local_mfa_used_codes",
        "local_mfa_challenges",
        "local_mfa_factors",
        "dev_mailbox",
        "local_email_tokens",
        "local_refresh_tokens",
        "local_sessions",
        "local_users",
    ):
        op.drop_table(table, schema=SCHEMA)
