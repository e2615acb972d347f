"""data model: profiles, app clients, roles, permissions and their assignments

Revision ID: 20261126_0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261126_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "auth_service_data"


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]


def _assigned_at() -> sa.Column[object]:
    return sa.Column(
        "assigned_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def _has_supabase_auth_users() -> bool:
    bind = op.get_bind()
    return bind.execute(sa.text("SELECT to_regclass('auth.users') IS NOT NULL")).scalar_one()


def upgrade() -> None:
    op.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    op.create_table(
        "profiles",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("username", sa.String(50), nullable=True),
        sa.Column("first_name", sa.String(100), nullable=True),
        sa.Column("last_name", sa.String(100), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_profiles")),
        sa.UniqueConstraint("username", name=op.f("uq_profiles_username")),
        schema=SCHEMA,
    )
    op.create_table(
        "app_clients",
        sa.Column("id", sa.Uuid(), server_default=sa.func.gen_random_uuid(), nullable=False),
        sa.Column("client_name", sa.String(100), nullable=False),
        sa.Column("client_secret_hash", sa.String(128), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_clients")),
        sa.UniqueConstraint("client_name", name=op.f("uq_app_clients_client_name")),
        schema=SCHEMA,
    )
    op.create_table(
        "roles",
        sa.Column("id", sa.Uuid(), server_default=sa.func.gen_random_uuid(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roles")),
        sa.UniqueConstraint("name", name=op.f("uq_roles_name")),
        schema=SCHEMA,
    )
    op.create_table(
        "permissions",
        sa.Column("id", sa.Uuid(), server_default=sa.func.gen_random_uuid(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_permissions")),
        sa.UniqueConstraint("name", name=op.f("uq_permissions_name")),
        schema=SCHEMA,
    )
    op.create_table(
        "role_permissions",
        sa.Column("role_id", sa.Uuid(), nullable=False),
        sa.Column("permission_id", sa.Uuid(), nullable=False),
        _assigned_at(),
        sa.ForeignKeyConstraint(
            ["role_id"],
            [f"{SCHEMA}.roles.id"],
            ondelete="CASCADE",
            name=op.f("fk_role_permissions_role_id_roles"),
        ),
        sa.ForeignKeyConstraint(
            ["permission_id"],
            [f"{SCHEMA}.permissions.id"],
            ondelete="CASCADE",
            name=op.f("fk_role_permissions_permission_id_permissions"),
        ),
        sa.PrimaryKeyConstraint("role_id", "permission_id", name=op.f("pk_role_permissions")),
        schema=SCHEMA,
    )
    op.create_index(
        op.f("ix_auth_service_data_role_permissions_permission_id"),
        "role_permissions",
        ["permission_id"],
        schema=SCHEMA,
    )
    op.create_table(
        "user_roles",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role_id", sa.Uuid(), nullable=False),
        _assigned_at(),
        sa.ForeignKeyConstraint(
            ["role_id"],
            [f"{SCHEMA}.roles.id"],
            ondelete="CASCADE",
            name=op.f("fk_user_roles_role_id_roles"),
        ),
        sa.PrimaryKeyConstraint("user_id", "role_id", name=op.f("pk_user_roles")),
        schema=SCHEMA,
    )
    op.create_index(
        op.f("ix_auth_service_data_user_roles_role_id"), "user_roles", ["role_id"], schema=SCHEMA
    )
    op.create_table(
        "app_client_roles",
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("role_id", sa.Uuid(), nullable=False),
        _assigned_at(),
        sa.ForeignKeyConstraint(
            ["client_id"],
            [f"{SCHEMA}.app_clients.id"],
            ondelete="CASCADE",
            name=op.f("fk_app_client_roles_client_id_app_clients"),
        ),
        sa.ForeignKeyConstraint(
            ["role_id"],
            [f"{SCHEMA}.roles.id"],
            ondelete="CASCADE",
            name=op.f("fk_app_client_roles_role_id_roles"),
        ),
        sa.PrimaryKeyConstraint("client_id", "role_id", name=op.f("pk_app_client_roles")),
        schema=SCHEMA,
    )
    op.create_index(
        op.f("ix_auth_service_data_app_client_roles_role_id"),
        "app_client_roles",
        ["role_id"],
        schema=SCHEMA,
    )

    if _has_supabase_auth_users():
        # On Supabase a user deleted in auth.users takes our rows with it.
        for table in ("profiles", "user_roles"):
            op.create_foreign_key(
                op.f(f"fk_{table}_user_id_users"),
                table,
                "users",
                ["user_id"],
                ["id"],
                source_schema=SCHEMA,
                referent_schema="auth",
                ondelete="CASCADE",
            )


def downgrade() -> None:
    for table in (
        "app_client_roles",
        "user_roles",
        "role_permissions",
        "permissions",
        "roles",
        "app_clients",
        "profiles",
    ):
        op.drop_table(table, schema=SCHEMA)
