"""`make bench`: grants/s and latency of POST /auth/token against the real database.

- The app runs under uvicorn (one worker) pinned to CPU 0; wrk runs pinned to CPU 1.
- In the same run, a bare FastAPI endpoint returning constant JSON is measured the same way:
  the ceiling. The ratio token/ceiling is the figure of merit (target >= 0.3).
- The same for a `private_key_jwt` grant (an ES256 client assertion) and a DPoP-bound grant
  (client_secret_basic plus an ES256 DPoP proof). Each request carries a fresh jti, so the
  requests are signed beforehand and wrk sends each once (bench/post_many.lua). Each row is
  a ratio to the same run's ceiling, and its cost is compared with the basic grant's
  (target: at most 1.5x).
- Then a fixed-rate run at 1,000 req/s (bench/paced.py; Debian has no wrk2) gives p99 and the
  count of non-200 answers.

Database: TEST_DATABASE_URL or AUTH_SERVICE_DATABASE_URL names a server; a throwaway database
is created on it, migrated and dropped. Without either, the embedded PostgreSQL is used.
Redis: REDIS_URL when set (denylist and shared rate limits as in production), in-process
otherwise. The token endpoint's own rate limit (per process) stays ON; it is raised to
10,000,000/minute for the run, since wrk sends everything from one IP (say so when quoting
the numbers).

- Then, on the same app: introspection and an admin GET (each as a ratio to the ceiling),
  user-JWT verification in process (bench/verifier_speed.py, as a ratio to a bare ECDSA
  verify), and an overload run (wrk -c256 on the token endpoint) reporting the share of
  503s from the in-flight cap and the p99 of /health sampled meanwhile on PROBE_PORT (what the
  kubelet probes; the target) and on the main port.

Environment knobs: BENCH_SECONDS (default 10), BENCH_CONNECTIONS (default 16),
BENCH_RATE (default 1000), BENCH_OVERLOAD_CONNECTIONS (default 256).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
BIN = Path(sys.executable).parent
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
RATE = int(os.environ.get("BENCH_RATE", "1000"))
OVERLOAD_CONNECTIONS = int(os.environ.get("BENCH_OVERLOAD_CONNECTIONS", "256"))
SERVER_CPU, LOAD_CPU = "0", "1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def database() -> Iterator[str]:
    sys.path.insert(0, str(ROOT / "src"))
    from sqlalchemy.engine import make_url

    from auth_service.cli import migrate
    from auth_service.core.db import async_database_url

    server = os.environ.get("TEST_DATABASE_URL") or os.environ.get("AUTH_SERVICE_DATABASE_URL")
    with contextlib.ExitStack() as stack:
        if not server:
            from auth_service.core.embedded_pg import embedded_postgres

            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="auth-bench-pg-"))
            server = stack.enter_context(embedded_postgres(Path(tmp) / "pgdata", delete=True))
        import asyncpg

        server = async_database_url(server)
        plain = make_url(server).set(drivername="postgresql").render_as_string(False)
        name = f"auth_bench_{uuid.uuid4().hex[:10]}"

        async def admin(sql: str) -> None:
            conn = await asyncpg.connect(plain)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
        url = make_url(server).set(database=name).render_as_string(False)
        try:
            migrate(url)
            yield url
        finally:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def server(target: str, port: int, env: dict[str, str], factory: bool) -> Iterator[str]:
    cmd = [
        "taskset", "-c", SERVER_CPU,
        str(BIN / "uvicorn"), target,
        "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    if factory:
        cmd.append("--factory")
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT / "bench")
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{target} did not start") from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def wrk(
    url: str,
    seconds: int,
    body: str,
    auth: str,
    *,
    method: str = "POST",
    connections: int = CONNECTIONS,
    requests_file: Path | None = None,
) -> dict[str, Any]:
    """wrk with one fixed request (post.lua), or one request per line of `requests_file`."""
    env = {**os.environ, "BENCH_BODY": body, "BENCH_AUTH": auth, "BENCH_METHOD": method}
    script = "post.lua"
    if requests_file is not None:
        env["BENCH_REQUESTS_FILE"] = str(requests_file)
        script = "post_many.lua"
    cmd = [
        "taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
        "--latency", "-s", str(BENCH / script), url,
    ]  # fmt: skip
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("BENCH_JSON "))
    data: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
    return data


def paced(url: str, body: str, auth: str) -> dict[str, Any]:
    cmd = [
        "taskset", "-c", LOAD_CPU, sys.executable, str(BENCH / "paced.py"),
        url, str(RATE), str(SECONDS), body, auth,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def wrk_many(url: str, seconds: int, path: Path) -> dict[str, Any]:
    return wrk(url, seconds, "", "", requests_file=path)


def _es256_key() -> tuple[Any, dict[str, Any]]:
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    private = ec.generate_private_key(ec.SECP256R1())
    public: dict[str, Any] = dict(ECAlgorithm.to_jwk(private.public_key(), as_dict=True))
    return private, public


def assertion_requests(path: Path, count: int, client_id: str, key: Any, token_url: str) -> None:
    """`count` client_credentials bodies, each with a fresh private_key_jwt assertion."""
    import jwt

    now = int(time.time())
    with path.open("w") as out:
        for _ in range(count):
            claims = {
                "iss": client_id, "sub": client_id, "aud": token_url,
                "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex,
            }  # fmt: skip
            assertion = jwt.encode(claims, key, algorithm="ES256", headers={"kid": "bench"})
            out.write(
                "grant_type=client_credentials&client_assertion_type="
                "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
                f"&client_assertion={assertion}\n"
            )


def dpop_requests(path: Path, count: int, auth: str, key: Any, public: Any, url: str) -> None:
    """`count` basic grants, each with a fresh DPoP proof (same key, new jti)."""
    import jwt

    header = {"typ": "dpop+jwt", "jwk": public}
    now = int(time.time())
    with path.open("w") as out:
        for _ in range(count):
            claims = {"htm": "POST", "htu": url, "iat": now, "jti": uuid.uuid4().hex}
            proof = jwt.encode(claims, key, algorithm="ES256", headers=header)
            out.write(f"grant_type=client_credentials\tAuthorization: {auth}\tDPoP: {proof}\n")


class HealthSampler(threading.Thread):
    """GET /health every 20 ms on its own connection while the overload runs: the probe's view."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True, name=base)
        self.base = base
        self.latencies: list[float] = []
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(f"{self.base}/health", timeout=5) as response:  # noqa: S310
                    response.read()
                self.latencies.append(time.perf_counter() - started)
            except OSError:
                self.failures += 1
            self.stop.wait(0.02)

    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[int(len(ordered) * 0.99)] * 1000 if ordered else float("nan")


def access_token(base: str, body: str, auth: str) -> str:
    request = urllib.request.Request(  # noqa: S310 - loopback URL we built
        f"{base}/auth/token",
        data=body.encode(),
        headers={"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        token: str = json.loads(response.read())["access_token"]
    return token


def check_token(base: str, body: str, auth: str) -> None:
    request = urllib.request.Request(  # noqa: S310 - loopback URL we built
        f"{base}/auth/token",
        data=body.encode(),
        headers={"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        token = json.loads(response.read())
    if "access_token" not in token:
        raise RuntimeError(f"no token from the app: {token}")


def main() -> int:
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    if (os.cpu_count() or 1) < 2:
        print("needs two CPUs (server on 0, load on 1)", file=sys.stderr)
        return 2
    with database() as url:
        env = {
            **os.environ,
            "AUTH_SERVICE_DATABASE_URL": url,
            "ENVIRONMENT": "development",
            "LOGGING_LEVEL": "WARNING",
            "RATE_LIMIT_TOKEN": "10000000/minute",
            "PYTHONPATH": str(ROOT / "src"),
        }
        created = subprocess.run(
            [str(BIN / "auth-service"), "clients", "create", "--name", "bench", "--role", "admin"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        creds = json.loads(created)
        raw = f"{quote_plus(creds['client_id'])}:{quote_plus(creds['client_secret'])}"
        auth = "Basic " + base64.b64encode(raw.encode()).decode()
        body = "grant_type=client_credentials"
        assertion_key, assertion_public = _es256_key()
        scratch = Path(tempfile.mkdtemp(prefix="auth-bench-"))
        jwks_file = scratch / "jwks.json"
        jwks_file.write_text(json.dumps({"keys": [{**assertion_public, "kid": "bench"}]}))
        keyed = subprocess.run(
            [str(BIN / "auth-service"), "clients", "create", "--name", "bench-pkjwt",
             "--role", "admin", "--jwks-file", str(jwks_file)],
            env=env, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        keyed_id = json.loads(keyed)["client_id"]
        dpop_key, dpop_public = _es256_key()

        results: dict[str, Any] = {}
        port = _free_port()
        with server("bare_app:app", port, env, factory=False) as base:
            wrk(f"{base}/ping", 3, "", "")  # warm up
            results["bare"] = wrk(f"{base}/ping", SECONDS, "", "")
        port = _free_port()
        # Assertions' aud and DPoP proofs' htu name the token endpoint by the issuer's URL.
        # PROBE_PORT as in k8s: the probes' own thread (the overload row samples both ports).
        probe_port = _free_port()
        app_env = {
            **env, "TOKEN_ISSUER": f"http://127.0.0.1:{port}", "PROBE_PORT": str(probe_port),
        }  # fmt: skip
        with server("auth_service.main:create_app", port, app_env, factory=True) as base:
            check_token(base, body, auth)
            wrk(f"{base}/auth/token", 3, body, auth)  # warm up: pool, caches, JIT-free CPython
            results["token"] = wrk(f"{base}/auth/token", SECONDS, body, auth)
            results["paced"] = paced(f"{base}/auth/token", body, auth)
            # Enough single-use requests at up to 1.5x the basic rate; warm-up and run each
            # get their own file, since every wrk process starts again at the first line.
            rate = results["token"]["rps"] * 1.5
            token_url = f"{base}/auth/token"
            warm, run = scratch / "warm.txt", scratch / "run.txt"
            assertion_requests(warm, int(rate * 3) + 500, keyed_id, assertion_key, token_url)
            assertion_requests(run, int(rate * SECONDS) + 500, keyed_id, assertion_key, token_url)
            wrk_many(token_url, 3, warm)
            results["private_key_jwt"] = wrk_many(token_url, SECONDS, run)
            # Proofs are made just before their run: their iat must stay within the window.
            dpop_requests(warm, int(rate * 3) + 500, auth, dpop_key, dpop_public, token_url)
            dpop_requests(run, int(rate * SECONDS) + 500, auth, dpop_key, dpop_public, token_url)
            wrk_many(token_url, 3, warm)
            results["dpop"] = wrk_many(token_url, SECONDS, run)
            token = access_token(base, body, auth)
            introspect_body = f"token={token}"
            wrk(f"{base}/auth/token/introspect", 2, introspect_body, auth)  # warm up
            results["introspect"] = wrk(
                f"{base}/auth/token/introspect", SECONDS, introspect_body, auth
            )
            bearer = f"Bearer {token}"
            wrk(f"{base}/auth/admin/roles", 2, "", bearer, method="GET")  # warm up
            results["admin"] = wrk(f"{base}/auth/admin/roles", SECONDS, "", bearer, method="GET")
            sampler = HealthSampler(f"http://127.0.0.1:{probe_port}")
            main_port = HealthSampler(base)
            sampler.start()
            main_port.start()
            results["overload"] = wrk(
                f"{base}/auth/token", SECONDS, body, auth, connections=OVERLOAD_CONNECTIONS
            )
            sampler.stop.set()
            main_port.stop.set()
            sampler.join()
            main_port.join()
            results["health_p99_ms"] = sampler.p99_ms()
            results["health_failures"] = sampler.failures
            results["main_health_p99_ms"] = main_port.p99_ms()
            results["main_health_failures"] = main_port.failures
        shutil.rmtree(scratch, ignore_errors=True)
    sys.path.insert(0, str(ROOT))
    from bench.verifier_speed import measure

    results["verifier"] = asyncio.run(measure())

    bare, token, fixed = results["bare"], results["token"], results["paced"]
    ratio = token["rps"] / bare["rps"]
    redis = "Redis" if os.environ.get("REDIS_URL") else "in-process"
    load = os.getloadavg()[0]
    print()
    print(f"wrk -t1 -c{CONNECTIONS} -d{SECONDS}s; server on CPU {SERVER_CPU}, load on CPU "
          f"{LOAD_CPU}; kv store: {redis}; 1-min load average at the end: {load:.2f}")  # fmt: skip
    print()
    pkjwt, dpop = results["private_key_jwt"], results["dpop"]
    rows = (
        ("bare FastAPI (ceiling)", bare),
        ("POST /auth/token (client_secret_basic)", token),
        ("POST /auth/token (private_key_jwt, ES256)", pkjwt),
        ("POST /auth/token (basic + DPoP proof, ES256)", dpop),
        ("POST /auth/token/introspect", results["introspect"]),
        ("GET /auth/admin/roles", results["admin"]),
    )
    print("| endpoint | req/s | x ceiling | p50 ms | p99 ms | non-2xx |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, r in rows:
        print(
            f"| {label} | {r['rps']:,.0f} | {r['rps'] / bare['rps']:.2f} | "
            f"{r['p50_us'] / 1000:.2f} | {r['p99_us'] / 1000:.2f} | {r['non2xx']} |"
        )
    verifier = results["verifier"]
    print()
    print("| user-JWT verification (auth_service.verifier, in process) | /s | x ceiling |")
    print("|---|---:|---:|")
    for label, key in (
        ("bare ECDSA P-256 verify (ceiling)", "ceiling"),
        ("ES256, distinct tokens (full check)", "distinct"),
        ("ES256, a token presented again (cached)", "repeated"),
    ):
        print(f"| {label} | {verifier[key]:,.0f} | {verifier[key] / verifier['ceiling']:.2f} |")
    print()
    print(f"ratio token/ceiling: {ratio:.2f} (target >= 0.30)")
    # Cost per grant relative to the basic grant: the inverse ratio of their rates.
    pkjwt_cost, dpop_cost = token["rps"] / pkjwt["rps"], token["rps"] / dpop["rps"]
    print(
        f"cost vs basic grant: private_key_jwt {pkjwt_cost:.2f}x, DPoP {dpop_cost:.2f}x"
        " (target <= 1.50x)"
    )
    introspect_ratio = results["introspect"]["rps"] / token["rps"]
    print(f"ratio introspection/token: {introspect_ratio:.2f} (target >= 0.5)")
    over = results["overload"]
    errors = sum(over[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    share = over["non2xx"] / max(1, over["requests"])
    print(
        f"overload wrk -c{OVERLOAD_CONNECTIONS} on /auth/token: {over['rps']:,.0f} req/s, "
        f"p99 {over['p99_us'] / 1000:.1f} ms, 503 share {share:.1%} (non-2xx are the "
        f"shedding's 503s), socket errors {errors}; /health p99 on the probe port "
        f"{results['health_p99_ms']:.1f} ms (target <= 50), failures "
        f"{results['health_failures']}; on the main port {results['main_health_p99_ms']:.1f} ms, "
        f"failures {results['main_health_failures']}"
    )
    print(
        f"fixed rate {fixed['rate']} req/s for {SECONDS}s: achieved {fixed['achieved_rps']} "
        f"req/s, p50 {fixed['p50_ms']} ms, p99 {fixed['p99_ms']} ms (target <= 10), "
        f"non-200: {fixed['non200']}"
    )
    ok = (
        ratio >= 0.3
        and fixed["p99_ms"] <= 10
        and fixed["non200"] == 0
        and all(r["non2xx"] == 0 for r in (token, pkjwt, dpop))
        and max(pkjwt_cost, dpop_cost) <= 1.5
        and introspect_ratio >= 0.5
        and results["health_p99_ms"] <= 50
        and results["health_failures"] == 0
        and errors == 0
    )
    print("PASS" if ok else "BELOW TARGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
