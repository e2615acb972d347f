"""Operator commands: `auth-service clients create` and `auth-service keys rotate|list|remove`."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from auth_service.cli import main
from auth_service.main import create_app
from tests.conftest import make_settings
from tests.factories import client_token, create_client


async def run_cli(
    monkeypatch: pytest.MonkeyPatch, database_url: str, *argv: str
) -> tuple[int, Any]:
    """Run the console entry point in a thread (it has its own event loop), capturing stdout."""
    monkeypatch.setenv("AUTH_SERVICE_DATABASE_URL", database_url)
    out = io.StringIO()

    def call() -> int:
        with contextlib.redirect_stdout(out):
            return main(list(argv))

    code = await asyncio.to_thread(call)
    text = out.getvalue().strip()
    return code, json.loads(text) if text else None


@pytest.fixture
async def replica(
    database_url: str, redis_url: str | None, clean_db: None
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A running app that refreshes its key ring every second, like a replica in production."""
    settings = make_settings(
        auth_service_database_url=database_url, redis_url=redis_url, signing_keys_refresh_seconds=1
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield app, c


async def test_clients_create_prints_credentials_that_work_as_admin(
    replica: tuple[FastAPI, httpx.AsyncClient],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, client = replica
    code, created = await run_cli(
        monkeypatch, database_url, "clients", "create", "--name", "ops", "--role", "admin"
    )
    assert code == 0
    assert set(created) == {"client_id", "client_secret"}
    token = await client.post(
        "/auth/token",
        data={"grant_type": "client_credentials"},
        auth=(created["client_id"], created["client_secret"]),
    )
    assert token.status_code == 200, token.text
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    listed = await client.get("/auth/admin/clients", headers=bearer)
    assert listed.status_code == 200
    assert [c["name"] for c in listed.json()["items"]] == ["ops"]

    again, _ = await run_cli(monkeypatch, database_url, "clients", "create", "--name", "ops")
    assert again == 1
    unknown, _ = await run_cli(
        monkeypatch, database_url, "clients", "create", "--name", "x", "--role", "nope"
    )
    assert unknown == 1


async def test_keys_rotate_is_picked_up_by_a_running_replica_without_restart(
    replica: tuple[FastAPI, httpx.AsyncClient],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, client = replica
    old_kid = app.state.oauth2.keys.ring.signing_kid
    code, rotated = await run_cli(monkeypatch, database_url, "keys", "rotate")
    assert code == 0
    new_kid = rotated["kid"]
    assert new_kid != old_kid

    for _ in range(60):  # SIGNING_KEYS_REFRESH_SECONDS=1: within a couple of seconds
        if app.state.oauth2.keys.ring.signing_kid == new_kid:
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the running app did not pick up the rotated key")
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert {k["kid"] for k in jwks["keys"]} == {old_kid, new_kid}

    code, listed = await run_cli(monkeypatch, database_url, "keys", "list")
    assert code == 0
    by_kid = {k["kid"]: k for k in listed}
    assert by_kid[new_kid]["retired_at"] is None
    assert by_kid[old_kid]["retired_at"] is not None
    assert all("private" not in json.dumps(k).lower() for k in listed)


async def test_keys_remove_of_the_active_key_leaves_a_new_active_key(
    replica: tuple[FastAPI, httpx.AsyncClient],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, client = replica
    client_id, secret = await create_client(app)
    old_token = await client_token(client, client_id, secret)
    old_kid = jwt.get_unverified_header(old_token)["kid"]

    code, result = await run_cli(monkeypatch, database_url, "keys", "remove", old_kid)
    assert (code, result) == (0, {"kid": old_kid, "removed": True})
    await app.state.oauth2.keys.refresh()

    assert app.state.oauth2.keys.ring.signing_kid != old_kid
    new_token = await client_token(client, client_id, secret)
    assert jwt.get_unverified_header(new_token)["kid"] != old_kid
    bearer = {"Authorization": f"Bearer {old_token}"}
    assert (await client.get("/auth/admin/clients", headers=bearer)).status_code == 401

    missing, _ = await run_cli(monkeypatch, database_url, "keys", "remove", "no-such-kid")
    assert missing == 1


async def test_clients_create_with_jwks_file_makes_a_key_only_client(
    replica: tuple[FastAPI, httpx.AsyncClient],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    import time
    import uuid

    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    _, client = replica
    private = ec.generate_private_key(ec.SECP256R1())
    public = dict(ECAlgorithm.to_jwk(private.public_key(), as_dict=True), kid="ops-1")
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [public]}))
    code, created = await run_cli(
        monkeypatch, database_url, "clients", "create", "--name", "keyed", "--role", "admin",
        "--jwks-file", str(jwks_file),
    )  # fmt: skip
    assert code == 0
    assert created["client_secret"] is None
    now = int(time.time())
    assertion = jwt.encode(
        {
            "iss": created["client_id"],
            "sub": created["client_id"],
            "aud": "http://testserver/auth/token",
            "iat": now,
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
        },
        private,
        algorithm="ES256",
        headers={"kid": "ops-1"},
    )
    token = await client.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )
    assert token.status_code == 200, token.text

    (tmp_path / "private.json").write_text(
        json.dumps({"keys": [ECAlgorithm.to_jwk(private, as_dict=True)]})
    )
    refused, _ = await run_cli(
        monkeypatch, database_url, "clients", "create", "--name", "leaky",
        "--jwks-file", str(tmp_path / "private.json"),
    )  # fmt: skip
    assert refused == 1
    missing, _ = await run_cli(
        monkeypatch, database_url, "clients", "create", "--name", "gone",
        "--jwks-file", str(tmp_path / "absent.json"),
    )  # fmt: skip
    assert missing == 1
