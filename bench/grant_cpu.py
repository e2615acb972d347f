"""CPU time per grant in-process: client_secret_basic, private_key_jwt and DPoP.

The app is called as an ASGI callable (no sockets, no HTTP parser) and timed with
`time.process_time()`, which counts this process's CPU only: on a shared, loaded VM that is
far steadier than wall-clock rates. Prints the best of several rounds per grant type and
its ratio to the basic grant.

Usage: python bench/grant_cpu.py DATABASE_URL [REDIS_URL]   (a migrated database)
"""

from __future__ import annotations

import asyncio
import base64
import sys
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from auth_service.clients.service import ClientService
from auth_service.config import Settings
from auth_service.main import create_app

URL = "http://testserver/auth/token"
ROUNDS, N = 7, 800


async def main(db: str, redis: str | None) -> None:
    s = Settings(  # type: ignore[call-arg]
        _env_file=None,
        environment="test",
        auth_service_database_url=db,
        redis_url=redis,
        redis_key_prefix=f"grant-cpu-{uuid.uuid4().hex[:6]}:",
        rate_limit_enabled=False,
        logging_level="WARNING",
        token_issuer="http://testserver",  # noqa: S106 - a URL
        supabase_url=None,
        supabase_anon_key=None,
        initial_admin_email=None,
    )
    app = create_app(s)
    priv = ec.generate_private_key(ec.SECP256R1())
    pub = dict(ECAlgorithm.to_jwk(priv.public_key(), as_dict=True), kid="k")
    async with app.router.lifespan_context(app):
        async with app.state.session_factory.begin() as session:
            svc = ClientService(session, s)
            view, secret = await svc.create(
                name=f"grant-cpu-{uuid.uuid4().hex[:6]}", role_names=["admin"]
            )
            keyed, _ = await svc.create(
                name=f"grant-cpu-k-{uuid.uuid4().hex[:6]}",
                role_names=["admin"],
                token_endpoint_auth_method="private_key_jwt",  # noqa: S106 - a method name
                jwks={"keys": [pub]},
            )
        kid = str(keyed.client.id)
        basic = b"Basic " + base64.b64encode(f"{view.client.id}:{secret}".encode())
        total = ROUNDS * N + 200
        now = int(time.time())

        def assertion() -> str:
            c = {"iss": kid, "sub": kid, "aud": URL, "iat": now, "exp": now + 300}
            c["jti"] = uuid.uuid4().hex
            return jwt.encode(c, priv, algorithm="ES256", headers={"kid": "k"})

        def proof() -> str:
            c = {"htm": "POST", "htu": URL, "iat": int(time.time()), "jti": uuid.uuid4().hex}
            header = {"typ": "dpop+jwt", "jwk": pub}
            return jwt.encode(c, priv, algorithm="ES256", headers=header)

        grant = b"grant_type=client_credentials"
        with_assertion = grant + (
            b"&client_assertion_type="
            b"urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion="
        )
        cases = {
            "basic": [(grant, [(b"authorization", basic)])] * total,
            "private_key_jwt": [(with_assertion + assertion().encode(), []) for _ in range(total)],
            "dpop": [
                (grant, [(b"authorization", basic), (b"dpop", proof().encode())])
                for _ in range(total)
            ],
        }
        status: list[int] = []

        async def send(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.start":
                status.append(msg["status"])

        async def call(body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
            headers = [
                (b"host", b"testserver"),
                (b"content-type", b"application/x-www-form-urlencoded"),
                (b"content-length", str(len(body)).encode()),
                *extra,
            ]
            scope = {
                "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                "method": "POST", "scheme": "http", "path": "/auth/token",
                "raw_path": b"/auth/token", "query_string": b"", "root_path": "",
                "server": ("testserver", 80), "client": ("127.0.0.1", 5000), "headers": headers,
            }  # fmt: skip

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            await app(scope, receive, send)

        out: dict[str, float] = {}
        for name, reqs in cases.items():
            it = iter(reqs)
            for _ in range(200):
                await call(*next(it))
            best = []
            for _ in range(ROUNDS):
                t = time.process_time()
                for _ in range(N):
                    await call(*next(it))
                best.append((time.process_time() - t) / N * 1e6)
            out[name] = min(best)
            if set(status) != {200}:
                raise RuntimeError(f"{name}: statuses {sorted(set(status))}")
        base = out["basic"]
        print("  ".join(f"{k} {v:.0f} us ({v / base:.2f}x)" for k, v in out.items()))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
