"""The operator CLI's daily work: clients, roles, permissions, by name or id, JSON or tables.

The commands run through the console entry point (as tests/rbac/test_cli.py does), and one
runs as a real process; their effect is checked through the HTTP API and the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.cli import main
from auth_service.rbac.models import Role, UserRole
from tests.factories import client_token, create_client

ROOT = Path(__file__).resolve().parents[2]


async def cli(
    monkeypatch: pytest.MonkeyPatch, database_url: str, *argv: str
) -> tuple[int, str, str]:
    """`auth-service ARGV` in a thread (it runs its own event loop): code, stdout, stderr."""
    monkeypatch.setenv("AUTH_SERVICE_DATABASE_URL", database_url)
    monkeypatch.setenv("LOGGING_LEVEL", "WARNING")
    out, err = io.StringIO(), io.StringIO()

    def call() -> int:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return main(list(argv))

    code = await asyncio.to_thread(call)
    return code, out.getvalue(), err.getvalue()


async def cli_json(monkeypatch: pytest.MonkeyPatch, database_url: str, *argv: str) -> Any:
    code, out, err = await cli(monkeypatch, database_url, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


async def test_first_steps_by_name_end_in_a_token_with_the_permission(
    app: FastAPI, client: httpx.AsyncClient, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_id, secret = await create_client(app, name="orders-app", roles=())
    run = lambda *argv: cli_json(monkeypatch, database_url, *argv)  # noqa: E731

    permission = await run("permissions", "create", "orders:read", "--description", "Read orders")
    assert (permission["name"], permission["is_core"]) == ("orders:read", False)
    role = await run("roles", "create", "orders-reader")
    granted = await run("roles", "grant", "orders-reader", "orders:read")
    assert (granted["role"]["id"], granted["permission"]["id"]) == (role["id"], permission["id"])
    # Idempotent, like the API: the same body again.
    assert await run("roles", "grant", role["id"], "orders:read") == granted
    assigned = await run("roles", "assign", "orders-reader", "--client", "orders-app")
    assert [r["name"] for r in assigned["roles"]] == ["orders-reader"]

    roles = {r["name"]: r for r in await run("roles", "list")}
    assert roles["orders-reader"]["permissions"] == ["orders:read"]
    assert {"admin", "user", "service"} <= set(roles)
    assert "orders:read" in {p["name"] for p in await run("permissions", "list")}

    token = await client_token(client, client_id, secret)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["roles"], claims["permissions"]) == (["orders-reader"], ["orders:read"])


async def test_clients_list_show_rotate_and_deactivate(
    app: FastAPI, client: httpx.AsyncClient, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_id, secret = await create_client(app, name="billing", roles=("service",))
    run = lambda *argv: cli_json(monkeypatch, database_url, *argv)  # noqa: E731

    listed = await run("clients", "list")
    assert [(c["name"], c["client_id"]) for c in listed] == [("billing", str(client_id))]
    shown = await run("clients", "show", "billing")
    assert shown == await run("clients", "show", str(client_id))
    assert "client_secret" not in shown
    # The API's own representation.
    admin_id, admin_secret = await create_client(app, roles=("admin",))
    headers = {"Authorization": f"Bearer {await client_token(client, admin_id, admin_secret)}"}
    api = (await client.get(f"/auth/admin/clients/{client_id}", headers=headers)).json()
    assert shown == api

    rotated = await run("clients", "rotate-secret", "billing")
    assert rotated["client_secret"].startswith("acs_")
    assert await client_token(client, client_id, rotated["client_secret"])
    assert await client_token(client, client_id, secret)  # the grace period

    deactivated = await run("clients", "deactivate", "billing")
    assert deactivated["is_active"] is False
    refused = await client.post(
        "/auth/token", data={"grant_type": "client_credentials"}, auth=(str(client_id), secret)
    )
    assert refused.status_code == 401


async def test_assigning_a_role_to_a_user_creates_the_profile(
    db: AsyncSession, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id = uuid.uuid4()
    first = await cli_json(
        monkeypatch, database_url, "roles", "assign", "user", "--user", str(user_id)
    )
    again = await cli_json(
        monkeypatch, database_url, "roles", "assign", "user", "--user", str(user_id)
    )
    assert (first["user_id"], first["role"]["name"]) == (str(user_id), "user")
    assert again == first
    held = await db.scalars(
        select(Role.name)
        .join(UserRole, UserRole.role_id == Role.id)
        .where(UserRole.user_id == user_id)
    )
    assert held.all() == ["user"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("clients", "show", "no-such"), "No client named 'no-such'. (client_not_found)"),
        (("roles", "grant", "admin", "no:pe"), "permission named 'no:pe'. (permission_not_found)"),
        (("roles", "assign", "ghost", "--client", "x"), "No role named 'ghost'. (role_not_found)"),
        (("roles", "create", "admin"), "(role_exists)"),
        (("permissions", "create", "NoColon"), "(validation_error)"),
    ],
)  # fmt: skip
async def test_mistakes_answer_one_line_with_the_api_error_code(
    clean_db: None,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    argv: tuple[str, ...],
    message: str,
) -> None:
    code, out, err = await cli(monkeypatch, database_url, *argv)
    assert code == 1
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_tables_are_readable_as_a_real_process(clean_db: None, database_url: str) -> None:
    env = {
        "AUTH_SERVICE_DATABASE_URL": database_url,
        "LOGGING_LEVEL": "WARNING",
        "PATH": "/usr/bin:/bin",
    }
    command = [str(Path(sys.executable).parent / "auth-service"), "roles", "list"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=60, check=True)
    lines = result.stdout.decode().splitlines()
    assert lines[0].split() == ["NAME", "ID", "IS_CORE", "PERMISSIONS"]
    admin = next(line for line in lines if line.startswith("admin "))
    assert admin.split()[2] == "yes"
    assert "roles:write" in admin
