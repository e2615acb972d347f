"""ES256 verifications per second in `auth_service.verifier` (the resource-server library).

Two rows: distinct tokens (every one a full signature check) and one token presented again
and again (what a busy caller does until its token expires: verified once, then a lookup).
The JWKS is served in-process (httpx MockTransport): keys are cached either way, so no row
includes a network call.

    .venv/bin/python -m bench.verifier_speed
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid

import httpx
import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from auth_service.verifier import TokenVerifier

N = int(os.environ.get("BENCH_N", "20000"))
ISSUER = "https://auth.example.com"


def _jwks_and_signer() -> tuple[dict[str, object], ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "alg": "ES256", "use": "sig"})
    return {"keys": [jwk]}, key


def _token(key: ec.EllipticCurvePrivateKey) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER, "aud": "orders", "sub": str(uuid.uuid4()), "jti": uuid.uuid4().hex,
        "iat": now, "exp": now + 900, "permissions": ["orders:read"], "roles": ["service"],
    }  # fmt: skip
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1", "typ": "at+jwt"})


async def measure() -> dict[str, float]:
    jwks, key = _jwks_and_signer()
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=jwks))
    async with httpx.AsyncClient(transport=transport) as http:
        verifier = TokenVerifier(
            ISSUER + "/jwks", issuer=ISSUER, audience="orders", http_client=http
        )
        distinct = [_token(key) for _ in range(N // 4)]
        started = time.perf_counter()
        for token in distinct:
            await verifier.verify(token)
        full = len(distinct) / (time.perf_counter() - started)
        repeated = distinct[0]
        started = time.perf_counter()
        for _ in range(N):
            await verifier.verify(repeated)
        cached = N / (time.perf_counter() - started)
        # The ceiling: the bare ECDSA verification (cryptography), nothing else.
        message = b"x" * 300
        der = key.sign(message, ec.ECDSA(hashes.SHA256()))
        public = key.public_key()
        started = time.perf_counter()
        for _ in range(N // 4):
            public.verify(der, message, ec.ECDSA(hashes.SHA256()))
        ceiling = (N // 4) / (time.perf_counter() - started)
    return {"distinct": full, "repeated": cached, "ceiling": ceiling}


def main() -> None:
    rates = asyncio.run(measure())
    ceiling = rates["ceiling"]
    print(f"bare ECDSA P-256 verify (ceiling):            {ceiling:,.0f}/s")
    for name, label in (
        ("distinct", "distinct tokens (full check)"),
        ("repeated", "a token presented again"),
    ):
        print(f"verifier ES256, {label:<30} {rates[name]:,.0f}/s  ({rates[name] / ceiling:.2f}x)")


if __name__ == "__main__":
    main()
