"""Three `auth-service serve` processes on one PostgreSQL and one Redis: a change made through
one replica takes effect on the others within its documented bound (docs/scaling.md), and the
user-facing rate limits are shared.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx
import pytest

from tests.conftest import create_database, drop_database, run_alembic
from tests.core.test_serve import CLI, ROOT, _wait_ready
from tests.factories import supabase_overrides
from tests.support.gotrue import GoTrueStandIn
from tests.support.live import free_port

# Documented bounds (docs/scaling.md): denylist entries are visible at once (shared Redis);
# client and role changes within the NOTIFY delivery (well under a second, 2 s allowed here);
# signing keys within SIGNING_KEYS_REFRESH_SECONDS (1 s here) plus one refresh.
NOTIFY_BOUND = 2.0
KEYS_REFRESH = 1
KEYS_BOUND = 2 * KEYS_REFRESH + 1.0
GRANT = {"grant_type": "client_credentials"}


@pytest.fixture
async def replica_db(database_server_url: str) -> AsyncIterator[str]:
    name = f"auth_replicas_{uuid.uuid4().hex[:10]}"
    url = await create_database(database_server_url, name)
    await run_alembic(url)
    yield url
    await drop_database(database_server_url, name)


@pytest.fixture
def replica_env(replica_db: str, require_redis: str, gotrue: GoTrueStandIn) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_SERVICE_", "REDIS_"))}
    supabase = supabase_overrides(gotrue)
    env.update(
        {
            "AUTH_SERVICE_DATABASE_URL": replica_db,
            "REDIS_URL": require_redis,
            "REDIS_KEY_PREFIX": f"replicas-{uuid.uuid4().hex[:8]}:",
            "ENVIRONMENT": "test",
            "LOGGING_LEVEL": "WARNING",
            "TOKEN_ISSUER": "http://replicas.test",
            "SIGNING_KEYS_REFRESH_SECONDS": str(KEYS_REFRESH),
            "RATE_LIMIT_LOGIN": "4/minute",
            "SUPABASE_URL": supabase["supabase_url"],
            "SUPABASE_ANON_KEY": supabase["supabase_anon_key"],
            "SUPABASE_SERVICE_ROLE_KEY": supabase["supabase_service_role_key"],
            "INITIAL_ADMIN_EMAIL": "",
            "INITIAL_ADMIN_PASSWORD": "",
        }
    )
    return env


@pytest.fixture
def replicas(replica_env: dict[str, str]) -> Iterator[list[str]]:
    ports = [free_port() for _ in range(3)]
    procs = [
        subprocess.Popen(
            [str(CLI), "serve", "--no-migrate", "--port", str(port)],
            cwd=ROOT,
            env=replica_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for port in ports
    ]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for base in bases:
            _wait_ready(base, deadline_s=90)
        yield bases
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            _, stderr = proc.communicate(timeout=30)
            assert b"Traceback" not in stderr, stderr.decode()[-2000:]


def _cli(env: dict[str, str], *args: str) -> dict[str, str]:
    done = subprocess.run(
        [str(CLI), *args], cwd=ROOT, env=env, capture_output=True, check=True, timeout=60
    )
    result: dict[str, str] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


async def _within(bound: float, check: Callable[[], Awaitable[bool]]) -> float:
    """Seconds until `check` holds; fails past `bound`."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > bound:
            raise AssertionError(f"not in effect within {bound}s")
        await asyncio.sleep(0.05)


async def test_three_replicas_share_revocations_changes_keys_and_rate_limits(
    replicas: list[str], replica_env: dict[str, str]
) -> None:
    a, b, c = replicas
    ops = _cli(replica_env, "clients", "create", "--name", "ops", "--role", "admin")
    ops_auth = httpx.BasicAuth(ops["client_id"], ops["client_secret"])
    async with httpx.AsyncClient(timeout=10) as http:

        async def grant(base: str, auth: httpx.BasicAuth) -> httpx.Response:
            return await http.post(f"{base}/auth/token", data=GRANT, auth=auth)

        async def admin_token(base: str = a) -> dict[str, str]:
            response = await grant(base, ops_auth)
            assert response.status_code == 200, response.text
            return {"Authorization": f"Bearer {response.json()['access_token']}"}

        admin = await admin_token()
        roles = (await http.get(f"{a}/auth/admin/roles?limit=100", headers=admin)).json()
        admin_role = next(r["id"] for r in roles["items"] if r["name"] == "admin")

        async def make_client(name: str, *, is_admin: bool) -> dict[str, str]:
            made = await http.post(f"{a}/auth/admin/clients", json={"name": name}, headers=admin)
            assert made.status_code == 201, made.text
            body: dict[str, str] = made.json()
            if is_admin:
                url = f"{a}/auth/admin/clients/{body['client_id']}/roles/{admin_role}"
                assert (await http.post(url, headers=admin)).status_code == 200
            return body

        for base in replicas:
            assert (await http.get(f"{base}/auth/admin/roles", headers=admin)).status_code == 200

        # 1. Revocation through A: refused on B and C at once (shared, durable denylist).
        doomed = await admin_token(b)
        token = doomed["Authorization"].split()[1]
        revoked = await http.post(f"{a}/auth/token/revoke", data={"token": token}, auth=ops_auth)
        assert revoked.status_code == 200
        for base in (b, c):
            assert (await http.get(f"{base}/auth/admin/roles", headers=doomed)).status_code == 401

        # 2. Logout through A: the user's token is refused on B and C at once.
        email = f"r-{uuid.uuid4().hex[:8]}@example.com"
        user = {"email": email, "password": "Correct-horse-1"}
        assert (await http.post(f"{a}/auth/users/register", json=user)).status_code == 201
        session = (await http.post(f"{b}/auth/users/login", json=user)).json()
        bearer = {"Authorization": f"Bearer {session['access_token']}"}
        assert (await http.get(f"{c}/auth/users/me", headers=bearer)).status_code == 200
        assert (await http.post(f"{a}/auth/users/logout", headers=bearer)).status_code == 204
        for base in (b, c):
            assert (await http.get(f"{base}/auth/users/me", headers=bearer)).status_code == 401

        # 3. Client deactivation through A: B and C refuse its grants within the NOTIFY bound.
        worker = await make_client("worker", is_admin=True)
        worker_auth = httpx.BasicAuth(worker["client_id"], worker["client_secret"])
        for base in (b, c):  # warm their client caches
            assert (await grant(base, worker_auth)).status_code == 200
        deactivated = await http.put(
            f"{a}/auth/admin/clients/{worker['client_id']}",
            json={"name": "worker", "is_active": False},
            headers=admin,
        )
        assert deactivated.status_code == 200, deactivated.text
        for base in (b, c):
            await _within(NOTIFY_BOUND, lambda base=base: _status_is(grant(base, worker_auth), 401))

        # 4. Secret rotation through A: the new secret works on B and C within the bound,
        #    the old one keeps working there during its grace period.
        old = await make_client("rotated", is_admin=False)
        old_auth = httpx.BasicAuth(old["client_id"], old["client_secret"])
        for base in (b, c):
            assert (await grant(base, old_auth)).status_code == 200
        rotation = await http.post(
            f"{a}/auth/admin/clients/{old['client_id']}/secret", headers=admin
        )
        new_auth = httpx.BasicAuth(old["client_id"], rotation.json()["client_secret"])
        for base in (b, c):
            await _within(NOTIFY_BOUND, lambda base=base: _status_is(grant(base, new_auth), 200))
            assert (await grant(base, old_auth)).status_code == 200

        # 5. Role change through A: a token naming a removed role loses access on B and C.
        demoted = await make_client("demoted", is_admin=True)
        demoted_auth = httpx.BasicAuth(demoted["client_id"], demoted["client_secret"])
        demoted_token = {
            "Authorization": f"Bearer {(await grant(b, demoted_auth)).json()['access_token']}"
        }
        for base in (b, c):
            listed = await http.get(f"{base}/auth/admin/roles", headers=demoted_token)
            assert listed.status_code == 200
        removed = await http.delete(
            f"{a}/auth/admin/clients/{demoted['client_id']}/roles/{admin_role}",
            headers=admin,
        )
        assert removed.status_code == 200, removed.text
        for base in (b, c):
            await _within(
                NOTIFY_BOUND,
                lambda base=base: _status_is(
                    http.get(f"{base}/auth/admin/roles", headers=demoted_token), 403
                ),
            )

        # 6. Signing-key rotation (operator CLI): every replica publishes the new key and
        #    accepts tokens another replica signs with it, within the key refresh bound.
        kid = _cli(replica_env, "keys", "rotate")["kid"]

        async def signs_and_accepts_everywhere() -> bool:
            for base in replicas:
                kids = [
                    k["kid"]
                    for k in (await http.get(f"{base}/.well-known/jwks.json")).json()["keys"]
                ]
                if kid not in kids:
                    return False
            minted = await admin_token(c)
            header = json.loads(_b64decode(minted["Authorization"].split()[1].split(".")[0]))
            if header["kid"] != kid:
                return False
            return all(
                [
                    (await http.get(f"{base}/auth/admin/roles", headers=minted)).status_code == 200
                    for base in (a, b)
                ]
            )

        await _within(KEYS_BOUND, signs_and_accepts_everywhere)

        # 7. Rate limits are shared: 4 logins per minute per IP, spread over the replicas.
        wrong = {"email": email, "password": "Wrong-horse-1"}
        statuses = [
            (await http.post(f"{base}/auth/users/login", json=wrong)).status_code
            for base in (a, b, c, a, b, c)
        ]
        # One login above already counted against this IP's window: three more (on A, B, C)
        # fill it, and from then on every replica refuses, whichever took the earlier ones.
        assert statuses == [401, 401, 401, 429, 429, 429], statuses


async def _status_is(request: Awaitable[httpx.Response], status: int) -> bool:
    return (await request).status_code == status


def _b64decode(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
