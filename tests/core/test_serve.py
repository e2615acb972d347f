"""`auth-service serve` (what `make run` runs) as a real process: embedded default and a URL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import create_database, drop_database
from tests.support.live import free_port

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).parent / "auth-service"


def _postgres_processes_using(data_dir: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "postgres" in cmdline and str(data_dir) in cmdline:
            pids.append(int(entry.name))
    return pids


def _wait_ready(base: str, deadline_s: float = 60) -> float:
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"/ready did not answer 200 within {deadline_s}s")


@pytest.fixture
async def scratch_database(database_server_url: str) -> AsyncIterator[str]:
    """An empty database (no migrations applied)."""
    name = f"auth_scratch_{uuid.uuid4().hex[:10]}"
    url = await create_database(database_server_url, name)
    yield url
    await drop_database(database_server_url, name)


@pytest.fixture
def serve_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_SERVICE_", "REDIS_"))}
    env.update(
        {
            "EMBEDDED_POSTGRES_DATA_DIR": str(tmp_path / "pgdata"),
            "XDG_RUNTIME_DIR": str(tmp_path / "run"),
            "LOGGING_LEVEL": "WARNING",
        }
    )
    return env


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(CLI), "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_serve_on_embedded_postgres_starts_and_stops_cleanly(
    serve_env: dict[str, str], tmp_path: Path, stop_signal: signal.Signals
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(serve_env, port)
    try:
        _wait_ready(base)
        assert httpx.get(f"{base}/health").json() == {"status": "ok"}
        assert httpx.get(f"{base}/docs").status_code == 200
        assert _postgres_processes_using(tmp_path / "pgdata"), "embedded server should run"
    finally:
        proc.send_signal(stop_signal)
        _, stderr = proc.communicate(timeout=30)
    # Ctrl-C is how `make run` is stopped: exit 0, so make prints no `Error 130`.
    expected = 0 if stop_signal is signal.SIGINT else 128 + stop_signal
    assert proc.returncode == expected, stderr.decode()[-2000:]
    assert _postgres_processes_using(tmp_path / "pgdata") == []
    assert b"Traceback" not in stderr


def test_serve_uses_auth_service_database_url_when_set(
    serve_env: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    port = free_port()
    serve_env["AUTH_SERVICE_DATABASE_URL"] = database_url
    serve_env["ROOT_PATH"] = "/identity"
    proc = _serve(serve_env, port)
    try:
        _wait_ready(f"http://127.0.0.1:{port}")
        # No embedded server was started for this run.
        assert not (tmp_path / "pgdata").exists()
        # ROOT_PATH reaches the app through the server: /docs links behind the proxy prefix.
        docs = httpx.get(f"http://127.0.0.1:{port}/docs").text
        assert "/identity/openapi.json" in docs
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def test_serve_in_production_refuses_defaults_with_a_clear_message(
    serve_env: dict[str, str],
) -> None:
    serve_env["ENVIRONMENT"] = "production"
    result = subprocess.run(
        [str(CLI), "serve", "--port", str(free_port())],
        cwd=ROOT,
        env=serve_env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    stderr = result.stderr.decode()
    assert "AUTH_SERVICE_DATABASE_URL must be set in production" in stderr
    assert "M2M_JWT_SECRET_KEY must be set to a non-default secret in production" in stderr
    assert "Traceback" not in stderr


def test_operator_commands_work_next_to_make_run_on_the_embedded_default(
    serve_env: dict[str, str], tmp_path: Path
) -> None:
    """The README's first steps: `make run`, then `auth-service clients create`, then a token."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(serve_env, port)
    try:
        _wait_ready(base)
        created = subprocess.run(
            [str(CLI), "clients", "create", "--name", "ops", "--role", "admin"],
            cwd=ROOT,
            env=serve_env,
            capture_output=True,
            timeout=60,
            check=True,
        )
        client = json.loads(created.stdout)
        token = httpx.post(
            f"{base}/auth/token",
            data={"grant_type": "client_credentials"},
            auth=(client["client_id"], client["client_secret"]),
        )
        assert token.status_code == 200, token.text
        # The command joined the service's server and left it running.
        assert httpx.get(f"{base}/ready").status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert _postgres_processes_using(tmp_path / "pgdata") == []


def test_operator_command_alone_starts_migrates_and_stops_the_embedded_server(
    serve_env: dict[str, str], tmp_path: Path
) -> None:
    result = subprocess.run(
        [str(CLI), "clients", "create", "--name", "solo", "--role", "admin"],
        cwd=ROOT,
        env=serve_env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert json.loads(result.stdout)["client_secret"].startswith("acs_")
    assert _postgres_processes_using(tmp_path / "pgdata") == []


def test_operator_command_on_an_unmigrated_database_explains_instead_of_a_traceback(
    serve_env: dict[str, str], scratch_database: str
) -> None:
    serve_env["AUTH_SERVICE_DATABASE_URL"] = scratch_database
    result = subprocess.run(
        [str(CLI), "keys", "list"],
        cwd=ROOT,
        env=serve_env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    stderr = result.stderr.decode()
    assert result.returncode == 1
    assert "database error" in stderr
    assert "auth-service migrate" in stderr
    assert "Traceback" not in stderr


def test_serve_in_production_never_prints_a_secret_value(serve_env: dict[str, str]) -> None:
    short_secret = "tiny-Secret-9f3k"
    serve_env.update(
        {
            "ENVIRONMENT": "production",
            "AUTH_SERVICE_DATABASE_URL": "postgresql://u:db-Pass-77x@db.example/app",
            "M2M_JWT_SECRET_KEY": short_secret,
            "CLIENT_SECRET_PEPPER": short_secret,
            "TOKEN_ISSUER": "https://auth.example",
        }
    )
    result = subprocess.run(
        [str(CLI), "serve"], cwd=ROOT, env=serve_env, capture_output=True, timeout=60, check=False
    )
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 2, output
    assert short_secret not in output
    assert "db-Pass-77x" not in output
    assert "M2M_JWT_SECRET_KEY must be at least 32 characters in production" in output
    assert "Traceback" not in output


def test_a_busy_port_names_port_and_the_flag(serve_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        serve_env["PORT"] = str(port)
        result = subprocess.run(
            [str(CLI), "serve"], cwd=ROOT, env=serve_env, capture_output=True, timeout=60,
            check=False,
        )  # fmt: skip
    stderr = result.stderr.decode()
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in stderr
    assert f"PORT={port + 1} make run" in stderr
    assert f"--port {port + 1}" in stderr
    assert "Traceback" not in stderr


def test_console_startup_says_where_everything_is(
    serve_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    serve_env.update({"LOGGING_LEVEL": "INFO", "ENVIRONMENT": "development"})
    serve_env.pop("TOKEN_ISSUER", None)
    serve_env.pop("LOG_FORMAT", None)
    proc = subprocess.Popen(
        [str(CLI), "serve", "--port", str(port)],
        cwd=ROOT,
        env=serve_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_ready(f"http://127.0.0.1:{port}")
        metadata = httpx.get(f"http://127.0.0.1:{port}/.well-known/oauth-authorization-server")
        kid = httpx.get(f"http://127.0.0.1:{port}/.well-known/jwks.json").json()["keys"][0]["kid"]
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    text = out.decode()
    assert proc.returncode == 0, text[-2000:]
    assert f"url                http://127.0.0.1:{port}\n" in text
    assert f"docs               http://127.0.0.1:{port}/docs\n" in text
    assert f"database           embedded PostgreSQL at {tmp_path / 'pgdata'}\n" in text
    assert "redis              none: denylists and rate limits in-process" in text
    assert "identity provider  local (users in this database" in text
    assert f"signing key        {kid}\n" in text
    # The issuer follows the port actually served (no TOKEN_ISSUER set).
    assert metadata.json()["token_endpoint"] == f"http://127.0.0.1:{port}/auth/token"
    assert not any(line.startswith("{") for line in text.splitlines())  # console, not JSON
