"""rbac: claims functions and Supabase custom access token hook

Revision ID: 20261126_0003
Revises: 20261126_0002
Create Date: 2026-11-26

Ships two SQL functions:
- auth_service_data.get_user_rbac_claims(user_id uuid) -> {"roles": [...], "permissions": [...]}
- public.custom_access_token_hook(event jsonb) -> {"claims": ...}, the signature Supabase Auth
  calls (config.toml: uri = "pg-functions://postgres/public/custom_access_token_hook").

Supabase runs the hook as `supabase_auth_admin`; where that role exists (on Supabase), it gets
exactly what the hook needs and nobody else can execute it. Elsewhere (the embedded PostgreSQL)
the grants are skipped.

The migration also adds the CHECK constraint behind the permission name rule.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261126_0003"
down_revision: str | None = "20261126_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "auth_service_data"

# Static copy of auth_service.rbac.constants.PERMISSION_NAME_PATTERN: migrations never import
# code that may change later.
PERMISSION_NAME_PATTERN = r"^[a-z][a-z0-9_.-]{0,62}:[a-z][a-z0-9_.-]{0,62}$"

# Tables the hook reads (directly or through get_user_rbac_claims).
HOOK_TABLES = ("profiles", "user_roles", "roles", "role_permissions", "permissions")

# Sorted with COLLATE "C" so the order is byte order on every server locale (and matches
# Python's sorted() for these ASCII names). A disabled profile gets no roles, like the API.
GET_USER_RBAC_CLAIMS = f"""
CREATE OR REPLACE FUNCTION {SCHEMA}.get_user_rbac_claims(user_id uuid)
RETURNS jsonb
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $function$
    WITH active AS (
        SELECT NOT EXISTS (
            SELECT 1 FROM {SCHEMA}.profiles p WHERE p.user_id = $1 AND NOT p.is_active
        ) AS ok
    ),
    granted_roles AS (
        SELECT ur.role_id, r.name
        FROM {SCHEMA}.user_roles ur
        JOIN {SCHEMA}.roles r ON r.id = ur.role_id
        WHERE ur.user_id = $1 AND (SELECT ok FROM active)
    )
    SELECT jsonb_build_object(
        'roles', to_jsonb(ARRAY(
            SELECT DISTINCT gr.name COLLATE "C" AS name FROM granted_roles gr ORDER BY 1
        )),
        'permissions', to_jsonb(ARRAY(
            SELECT DISTINCT p.name COLLATE "C" AS name
            FROM granted_roles gr
            JOIN {SCHEMA}.role_permissions rp ON rp.role_id = gr.role_id
            JOIN {SCHEMA}.permissions p ON p.id = rp.permission_id
            ORDER BY 1
        ))
    )
$function$
"""

# Every claim Supabase put in event.claims survives; only `roles` and `permissions` are set
# (the same top-level names as our machine tokens). A malformed user id must not break sign-in:
# it gets empty arrays instead of a cast error.
CUSTOM_ACCESS_TOKEN_HOOK = f"""
CREATE OR REPLACE FUNCTION public.custom_access_token_hook(event jsonb)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $function$
DECLARE
    claims jsonb := COALESCE(event -> 'claims', '{{}}'::jsonb);
    subject text := COALESCE(event ->> 'user_id', claims ->> 'sub');
    rbac jsonb := '{{"roles": [], "permissions": []}}'::jsonb;
BEGIN
    IF subject ~* '^[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}$' THEN
        rbac := {SCHEMA}.get_user_rbac_claims(subject::uuid);
    END IF;
    claims := claims
        || jsonb_build_object('roles', rbac -> 'roles', 'permissions', rbac -> 'permissions');
    RETURN jsonb_build_object('claims', claims);
END;
$function$
"""


def _if_role_exists(role: str, statement: str) -> str:
    return (
        "DO $do$ BEGIN "
        f"IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = '{role}') THEN "
        f"{statement}; "
        "END IF; END $do$"
    )


def upgrade() -> None:
    op.create_check_constraint(
        op.f("ck_permissions_name_format"),
        "permissions",
        f"name ~ '{PERMISSION_NAME_PATTERN}'",
        schema=SCHEMA,
    )
    op.execute(GET_USER_RBAC_CLAIMS)
    op.execute(CUSTOM_ACCESS_TOKEN_HOOK)

    # Functions are executable by PUBLIC by default; on Supabase, PostgREST would expose the
    # public one to `anon` and `authenticated` as an RPC.
    for function in (
        "public.custom_access_token_hook(jsonb)",
        f"{SCHEMA}.get_user_rbac_claims(uuid)",
    ):
        op.execute(f"REVOKE EXECUTE ON FUNCTION {function} FROM PUBLIC")
        for role in ("anon", "authenticated"):
            op.execute(_if_role_exists(role, f"REVOKE EXECUTE ON FUNCTION {function} FROM {role}"))

    tables = ", ".join(f"{SCHEMA}.{table}" for table in HOOK_TABLES)
    for statement in (
        "GRANT EXECUTE ON FUNCTION public.custom_access_token_hook(jsonb) TO supabase_auth_admin",
        f"GRANT EXECUTE ON FUNCTION {SCHEMA}.get_user_rbac_claims(uuid) TO supabase_auth_admin",
        f"GRANT USAGE ON SCHEMA {SCHEMA} TO supabase_auth_admin",
        f"GRANT SELECT ON {tables} TO supabase_auth_admin",
    ):
        op.execute(_if_role_exists("supabase_auth_admin", statement))


def downgrade() -> None:
    tables = ", ".join(f"{SCHEMA}.{table}" for table in HOOK_TABLES)
    for statement in (
        f"REVOKE SELECT ON {tables} FROM supabase_auth_admin",
        f"REVOKE USAGE ON SCHEMA {SCHEMA} FROM supabase_auth_admin",
    ):
        op.execute(_if_role_exists("supabase_auth_admin", statement))
    # Dropping the functions drops their grants with them.
    op.execute("DROP FUNCTION IF EXISTS public.custom_access_token_hook(jsonb)")
    op.execute(f"DROP FUNCTION IF EXISTS {SCHEMA}.get_user_rbac_claims(uuid)")
    op.drop_constraint(
        op.f("ck_permissions_name_format"), "permissions", type_="check", schema=SCHEMA
    )
