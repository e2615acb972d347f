"""Compact JWS parsing and signature checks on the token path, without PyJWT's slow parse.

PyJWT's `decode` parses the token with a per-character check and then parses it again for
the claims; on a signed-assertion or DPoP grant that is as costly as the signature check
itself. Here the token is split and decoded once with the standard library, and the
signature is checked by PyJWT's algorithm objects (which also convert JWS raw r||s to DER).
Callers check the claims themselves.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from jwt.algorithms import HMACAlgorithm

_MAX_TOKEN = 16_384
_HMAC = {
    "HS256": HMACAlgorithm(HMACAlgorithm.SHA256),
    "HS384": HMACAlgorithm(HMACAlgorithm.SHA384),
    "HS512": HMACAlgorithm(HMACAlgorithm.SHA512),
}


class MalformedJws(ValueError):
    """Not a compact JWS with JSON object header and payload."""


@dataclass(frozen=True, slots=True)
class CompactJws:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def parse(token: str) -> CompactJws:
    parts = token.split(".")
    if len(parts) != 3 or len(token) > _MAX_TOKEN:
        raise MalformedJws("not a compact JWS")
    try:
        header = json.loads(_b64decode(parts[0]))
        claims = json.loads(_b64decode(parts[1]))
        signature = _b64decode(parts[2])
    except (ValueError, TypeError, binascii.Error) as exc:
        raise MalformedJws("undecodable JWS") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise MalformedJws("JWS header or payload is not an object")
    return CompactJws(header, claims, f"{parts[0]}.{parts[1]}".encode(), signature)


def verify_with_jwk(jws: CompactJws, key: Any) -> bool:
    """`key` is a PyJWK built for the header's algorithm."""
    return bool(key.Algorithm.verify(jws.signing_input, key.key, jws.signature))


def verify_hmac(jws: CompactJws, alg: str, secret: bytes) -> bool:
    algorithm = _HMAC.get(alg)
    if algorithm is None:
        return False
    return bool(algorithm.verify(jws.signing_input, secret, jws.signature))
