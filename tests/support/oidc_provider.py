"""A small OpenID Connect provider on loopback, for the local identity provider's social login.

It serves discovery, JWKS, UserInfo, an authorize endpoint that approves the configured user at once
(redirecting back with `code` and `state`) and a token endpoint that checks client
authentication (the method it advertises), the redirect URI, single use of the code and PKCE
(S256), then issues an id_token signed with a fresh RSA or EC key. Tests steer it through the
attributes of `OidcProvider` (the control panel), including knobs to misbehave, and reach it
only over real HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.support.live import free_port, serve_in_thread

CLIENT_ID = "auth-service-test"
CLIENT_SECRET = "oidc-test-client-secret-do-not-leak"
REDIRECT_URI = "http://127.0.0.1:8000/auth/users/login/test/callback"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TestUser:
    __test__ = False  # not a pytest class

    subject: str = "248289761001"
    email: str | None = "ada@example.com"
    email_verified: bool | str = True
    name: str = "Ada Lovelace"


@dataclass
class Misbehaviour:
    """What the provider gets wrong on purpose; all off by default."""

    discovery_issuer: str | None = None  # the `issuer` in the discovery document
    id_token_issuer: str | None = None
    id_token_audience: str | list[str] | None = None
    id_token_nonce: str | None = None
    expired: bool = False  # exp (and iat) an hour in the past
    unknown_kid: bool = False  # signed with a key that the JWKS never shows
    alg_none: bool = False
    hs256_with_public_key: bool = False  # the classic key-confusion forgery
    omit_id_token: bool = False
    token_delay_seconds: float = 0.0
    token_status: int | None = None  # answer the token endpoint with this status and a body
    token_error_description: str = "upstream says: internal detail 7f3a9"
    email_only_in_userinfo: bool = False  # the id_token has no email; /userinfo has it
    userinfo_subject: str | None = None  # /userinfo speaks about someone else


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    scope: str


@dataclass
class OidcProvider:
    issuer: str = ""
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    redirect_uris: tuple[str, ...] = (REDIRECT_URI,)
    auth_methods: list[str] = field(default_factory=lambda: ["client_secret_basic"])
    signing_alg: str = "RS256"  # or "ES256"
    advertised_algs: list[str] = field(default_factory=lambda: ["RS256", "ES256"])
    user: TestUser = field(default_factory=TestUser)
    misbehave: Misbehaviour = field(default_factory=Misbehaviour)
    # What happened, for assertions.
    discovery_requests: int = 0
    jwks_requests: int = 0
    userinfo_requests: int = 0
    last_authorize: dict[str, str] = field(default_factory=dict)
    last_client_auth: str | None = None
    last_token_error: str | None = None

    def __post_init__(self) -> None:
        self._grants: dict[str, _Grant] = {}
        self._access_tokens: set[str] = set()
        self.rotate_keys()
        self._stray_key = RSAKey.generate_key(2048, parameters={"kid": "stray"})

    # --- control panel ---------------------------------------------------------------------
    def rotate_keys(self) -> None:
        """Publish fresh keys (new kids); the old ones disappear from the JWKS."""
        tag = secrets.token_hex(4)
        self._rsa = RSAKey.generate_key(2048, parameters={"kid": f"rsa-{tag}", "use": "sig"})
        self._ec = ECKey.generate_key("P-256", parameters={"kid": f"ec-{tag}", "use": "sig"})

    def reset(self) -> None:
        self.auth_methods = ["client_secret_basic"]
        self.signing_alg = "RS256"
        self.advertised_algs = ["RS256", "ES256"]
        self.user = TestUser()
        self.misbehave = Misbehaviour()
        self.discovery_requests = self.jwks_requests = self.userinfo_requests = 0
        self.last_authorize = {}
        self.last_client_auth = self.last_token_error = None
        self._grants.clear()
        self._access_tokens.clear()

    # --- endpoints ---------------------------------------------------------------------------
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/jwks", self._jwks),
                Route("/authorize", self._authorize),
                Route("/token", self._token, methods=["POST"]),
                Route("/userinfo", self._userinfo),
            ]
        )

    async def _discovery(self, request: Request) -> Response:
        self.discovery_requests += 1
        return JSONResponse(
            {
                "issuer": self.misbehave.discovery_issuer or self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "userinfo_endpoint": f"{self.issuer}/userinfo",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": self.advertised_algs,
                "token_endpoint_auth_methods_supported": self.auth_methods,
                "code_challenge_methods_supported": ["S256"],
                "scopes_supported": ["openid", "email", "profile"],
            }
        )

    async def _jwks(self, request: Request) -> Response:
        self.jwks_requests += 1
        keys = KeySet([self._rsa, self._ec]).as_dict(private=False)
        return JSONResponse(keys, headers={"Cache-Control": "max-age=600"})

    async def _authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        self.last_authorize = params
        if params.get("client_id") != self.client_id:
            return PlainTextResponse("unknown client", status_code=400)
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in self.redirect_uris:
            return PlainTextResponse("redirect_uri is not registered", status_code=400)
        state = params.get("state")
        if (
            params.get("response_type") != "code"
            or "openid" not in params.get("scope", "").split()
            or params.get("code_challenge_method") != "S256"
            or not params.get("code_challenge")
        ):
            query = urlencode({"error": "invalid_request", "state": state or ""})
            return RedirectResponse(f"{redirect_uri}?{query}", status_code=302)
        code = secrets.token_urlsafe(24)
        self._grants[code] = _Grant(
            client_id=self.client_id,
            redirect_uri=redirect_uri,
            code_challenge=params["code_challenge"],
            nonce=params.get("nonce"),
            scope=params["scope"],
        )
        query = urlencode({"code": code, "state": state or "", "iss": self.issuer})
        return RedirectResponse(f"{redirect_uri}?{query}", status_code=302)

    def _error(self, error: str, status: int = 400) -> Response:
        self.last_token_error = error
        body = {"error": error, "error_description": self.misbehave.token_error_description}
        return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    def _authenticate(self, request: Request, form: dict[str, str]) -> str | None:
        """The client authentication method used, when the credentials are right."""
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:], validate=True).decode()
            except ValueError:
                return None
            client_id, _, secret = decoded.partition(":")
            method, client_id, secret = "client_secret_basic", unquote(client_id), unquote(secret)
        elif "client_secret" in form:
            method = "client_secret_post"
            client_id, secret = form.get("client_id", ""), form["client_secret"]
        else:
            return None
        self.last_client_auth = method
        if method not in self.auth_methods or client_id != self.client_id:
            return None
        return method if hmac.compare_digest(secret, self.client_secret) else None

    async def _token(self, request: Request) -> Response:
        if self.misbehave.token_delay_seconds:
            await asyncio.sleep(self.misbehave.token_delay_seconds)
        if self.misbehave.token_status is not None:
            return self._error("server_error", self.misbehave.token_status)
        form = {key: str(value) for key, value in (await request.form()).items()}
        if self._authenticate(request, form) is None:
            return self._error("invalid_client", 401)
        if form.get("grant_type") != "authorization_code":
            return self._error("unsupported_grant_type")
        grant = self._grants.pop(form.get("code", ""), None)  # single use
        if grant is None or grant.client_id != self.client_id:
            return self._error("invalid_grant")
        if form.get("redirect_uri") != grant.redirect_uri:
            return self._error("invalid_grant")
        verifier = form.get("code_verifier", "")
        challenge = _b64url(hashlib.sha256(verifier.encode()).digest())
        if not verifier or not hmac.compare_digest(challenge, grant.code_challenge):
            return self._error("invalid_grant")
        access_token = secrets.token_urlsafe(32)
        self._access_tokens.add(access_token)
        body: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": grant.scope,
        }
        if not self.misbehave.omit_id_token:
            body["id_token"] = self._id_token(grant, access_token)
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    async def _userinfo(self, request: Request) -> Response:
        self.userinfo_requests += 1
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer ") or header[7:] not in self._access_tokens:
            return JSONResponse(
                {"error": "invalid_token"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        body: dict[str, Any] = {
            "sub": self.misbehave.userinfo_subject or self.user.subject,
            "name": self.user.name,
        }
        if self.user.email is not None:
            body["email"] = self.user.email
            body["email_verified"] = self.user.email_verified
        return JSONResponse(body)

    def _id_token(self, grant: _Grant, access_token: str) -> str:
        bad = self.misbehave
        now = int(time.time()) - (3600 if bad.expired else 0)
        claims: dict[str, Any] = {
            "iss": bad.id_token_issuer or self.issuer,
            "sub": self.user.subject,
            "aud": bad.id_token_audience or self.client_id,
            "iat": now,
            "exp": now + 300,
            "auth_time": now,
            "at_hash": _b64url(hashlib.sha256(access_token.encode()).digest()[:16]),
            "name": self.user.name,
        }
        if self.user.email is not None and not bad.email_only_in_userinfo:
            claims["email"] = self.user.email
            claims["email_verified"] = self.user.email_verified
        nonce = bad.id_token_nonce or grant.nonce
        if nonce is not None:
            claims["nonce"] = nonce
        if bad.alg_none:
            return self._unsigned({"alg": "none", "typ": "JWT"}, claims, b"")
        if bad.hs256_with_public_key:
            # Sign with the public key as an HMAC secret, hoping the verifier picks HS256 for it.
            header = {"alg": "HS256", "typ": "JWT", "kid": self._rsa.kid}
            secret = self._rsa.as_pem(private=False)
            signing_input = f"{_b64url(_json(header))}.{_b64url(_json(claims))}".encode()
            signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
            return self._unsigned(header, claims, signature)
        if bad.unknown_kid:
            key: RSAKey | ECKey = self._stray_key
            alg = "RS256"
        else:
            key = self._ec if self.signing_alg.startswith("ES") else self._rsa
            alg = self.signing_alg
        header = {"alg": alg, "typ": "JWT", "kid": key.kid}
        return jwt.encode(header, claims, key, algorithms=[alg])

    @staticmethod
    def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes) -> str:
        return f"{_b64url(_json(header))}.{_b64url(_json(claims))}.{_b64url(signature)}"


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@contextmanager
def run_oidc_provider() -> Iterator[OidcProvider]:
    """Serve a fresh provider on a loopback port for the duration of the block."""
    port = free_port()
    provider = OidcProvider(issuer=f"http://127.0.0.1:{port}")
    with serve_in_thread(provider.app(), port, name="oidc-provider"):
        yield provider
