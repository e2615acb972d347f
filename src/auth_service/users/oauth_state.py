"""The OAuth (PKCE) state cookie: `state`, `code_verifier` and the final redirect, HMAC-signed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OAuthState:
    state: str
    code_verifier: str
    provider: str
    redirect_to: str | None
    expires_at: int


def new_state(provider: str, redirect_to: str | None, ttl_seconds: int) -> OAuthState:
    return OAuthState(
        state=secrets.token_urlsafe(24),
        code_verifier=secrets.token_urlsafe(48),  # 64 chars from the RFC 7636 alphabet
        provider=provider,
        redirect_to=redirect_to,
        expires_at=int(time.time()) + ttl_seconds,
    )


def code_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), payload.encode("ascii"), hashlib.sha256).digest())


def seal(state: OAuthState, secret: str) -> str:
    payload = _b64(
        json.dumps(
            {
                "s": state.state,
                "v": state.code_verifier,
                "p": state.provider,
                "r": state.redirect_to,
                "e": state.expires_at,
            },
            separators=(",", ":"),
        ).encode()
    )
    return f"{payload}.{_mac(secret, payload)}"


def unseal(cookie: str, secret: str) -> OAuthState | None:
    """The state if the cookie is ours, intact and not expired; else None."""
    payload, _, mac = cookie.partition(".")
    if not payload or not mac or not hmac.compare_digest(mac, _mac(secret, payload)):
        return None
    try:
        data = json.loads(_unb64(payload))
        state = OAuthState(
            state=str(data["s"]),
            code_verifier=str(data["v"]),
            provider=str(data["p"]),
            redirect_to=data["r"],
            expires_at=int(data["e"]),
        )
    except (ValueError, KeyError, TypeError):
        return None
    return state if state.expires_at > time.time() else None
