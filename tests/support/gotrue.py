"""A GoTrue (Supabase Auth) stand-in: a small ASGI app served by uvicorn on loopback.

It speaks the wire format of ../shared/contracts (status codes, error codes, the 2024-01-01
`{"code", "message"}` error body), signs ES256 tokens with a `kid` (HS256 when asked) and keeps
its state in memory. Tests reach it only over HTTP through the real supabase client, and steer it
through the Python methods at the bottom (the fake's control panel), never through our code.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jwt
import pyotp
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

ANON_KEY = "standin-anon-key"
SERVICE_ROLE_KEY = "standin-service-role-key"
JWT_SECRET = "standin-jwt-secret-with-at-least-32-characters"
API_VERSION = "2024-01-01"
OAUTH_PROVIDERS = frozenset({"github", "google"})
OPEN_PATHS = frozenset({"/auth/v1/authorize", "/auth/v1/.well-known/jwks.json"})
# Go's time.ParseDuration, as GoTrue reads `ban_duration` ("24h", "1h30m", "90s", "-1h").
_GO_DURATION = re.compile(r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|ms|s|m|h))+|[-+]?0")
_GO_UNIT = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|ms|s|m|h)")
_GO_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def _go_duration_seconds(text: str) -> float:
    if not _GO_DURATION.fullmatch(text):
        raise GoTrueError(
            400,
            "validation_failed",
            f'invalid format for ban duration: time: invalid duration "{text}"',
        )
    total = sum(float(n) * _GO_SECONDS[unit] for n, unit in _GO_UNIT.findall(text))
    return -total if text.startswith("-") else total


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class Factor:
    id: str
    friendly_name: str
    secret: str
    status: str = "unverified"
    created_at: str = field(default_factory=_now_iso)
    updated_at: str = field(default_factory=_now_iso)


@dataclass
class User:
    id: str
    email: str
    password: str
    created_at: str = field(default_factory=_now_iso)
    confirmed_at: str | None = None
    last_sign_in_at: str | None = None
    user_metadata: dict[str, Any] = field(default_factory=dict)
    provider: str = "email"
    factors: dict[str, Factor] = field(default_factory=dict)
    banned_until: float | None = None

    def is_banned(self) -> bool:
        return self.banned_until is not None and time.time() < self.banned_until


@dataclass
class Session:
    id: str
    user_id: str
    aal: str
    amr: list[dict[str, Any]]
    active_refresh: str = ""
    parent_refresh: str | None = None


@dataclass
class Otp:
    email: str
    type: str
    token: str
    token_hash: str
    expires_at: float


@dataclass
class Failure:
    status: int = 500
    code: str | None = None
    delay: float = 0.0
    path: str | None = None


class GoTrueError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        self.status, self.code, self.message, self.extra = status, code, message, extra


class GoTrueStandIn:
    """State and behaviour of the fake; `app` is its ASGI application."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.base_url = ""
        self.autoconfirm = True
        self.sign_hs256 = False
        self.access_token_ttl = 3600
        self.otp_ttl = 3600.0
        self.oauth_email = "oauth-user@example.com"
        self.users: dict[str, User] = {}
        self.sessions: dict[str, Session] = {}
        self.refresh_tokens: dict[str, str] = {}  # token -> session id (live or spent)
        self.spent_refresh: set[str] = set()
        self.otps: list[Otp] = []
        self.outbox: list[dict[str, Any]] = []
        self.challenges: dict[str, tuple[str, float]] = {}
        self.flow_states: dict[str, tuple[str, str, str]] = {}
        self.failures: list[Failure] = []
        self.requests: list[dict[str, Any]] = []
        self.jwks_hits = 0
        self.keys: list[tuple[str, ec.EllipticCurvePrivateKey]] = []
        self.rotate_key()
        self.app = Starlette(routes=self._routes())

    # --- control panel (called by tests) -------------------------------------------------
    @property
    def issuer(self) -> str:
        return self.base_url + "/auth/v1"

    def reset(self) -> None:
        with self.lock:
            self.autoconfirm, self.sign_hs256 = True, False
            self.access_token_ttl = 3600
            self.oauth_email = "oauth-user@example.com"
            for store in (
                self.users,
                self.sessions,
                self.refresh_tokens,
                self.challenges,
                self.flow_states,
            ):
                store.clear()
            self.spent_refresh.clear()
            self.otps.clear()
            self.outbox.clear()
            self.failures.clear()
            self.requests.clear()
            self.jwks_hits = 0
            del self.keys[1:]

    def rotate_key(self) -> str:
        """Add a new signing key (the JWKS keeps serving the old ones); returns its kid."""
        with self.lock:
            kid = uuid.uuid4().hex[:16]
            self.keys.append((kid, ec.generate_private_key(ec.SECP256R1())))
            return kid

    def fail_next(
        self,
        status: int = 500,
        code: str | None = None,
        delay: float = 0.0,
        path: str | None = None,
    ) -> None:
        """Make the next request (to `path`, if given) fail with `status`/`code`, or stall."""
        with self.lock:
            self.failures.append(Failure(status, code, delay, path))

    def last_email(self, email: str, type_: str | None = None) -> dict[str, Any]:
        with self.lock:
            for item in reversed(self.outbox):
                if item["email"] == email and (type_ is None or item["type"] == type_):
                    return item
        raise LookupError(f"no email to {email}")

    def user_by_email(self, email: str) -> User | None:
        with self.lock:
            return next((u for u in self.users.values() if u.email == email.lower()), None)

    def create_user(self, email: str, password: str, confirmed: bool = True) -> User:
        with self.lock:
            user = User(id=str(uuid.uuid4()), email=email.lower(), password=password)
            if confirmed:
                user.confirmed_at = _now_iso()
            self.users[user.id] = user
            return user

    def mint_token(self, user: User, **overrides: Any) -> str:
        """A token for `user` signed with the current key; overrides patch claims or headers."""
        with self.lock:
            session = self._new_session(user, "aal1", "password")
            return self._access_token(user, session, **overrides)

    # --- tokens ------------------------------------------------------------------------------
    def _new_session(self, user: User, aal: str, method: str) -> Session:
        session = Session(
            id=str(uuid.uuid4()),
            user_id=user.id,
            aal=aal,
            amr=[{"method": method, "timestamp": int(time.time())}],
        )
        self.sessions[session.id] = session
        self._issue_refresh(session)
        user.last_sign_in_at = _now_iso()
        return session

    def _issue_refresh(self, session: Session) -> str:
        token = secrets.token_urlsafe(16)
        if session.active_refresh:
            session.parent_refresh = session.active_refresh
            self.spent_refresh.add(session.active_refresh)
        session.active_refresh = token
        self.refresh_tokens[token] = session.id
        return token

    def _access_token(self, user: User, session: Session, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user.id,
            "aud": "authenticated",
            "exp": now + self.access_token_ttl,
            "iat": now,
            "email": user.email,
            "phone": "",
            "app_metadata": {"provider": user.provider, "providers": [user.provider]},
            "user_metadata": user.user_metadata,
            "role": "authenticated",
            "aal": session.aal,
            "amr": session.amr,
            "session_id": session.id,
            "is_anonymous": False,
        }
        headers: dict[str, Any] = overrides.pop("headers", {})
        secret = overrides.pop("secret", None)
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        if self.sign_hs256 or secret is not None:
            return jwt.encode(claims, secret or JWT_SECRET, algorithm="HS256", headers=headers)
        kid, key = self.keys[-1]
        return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid, **headers})

    def _session_body(self, user: User, session: Session) -> dict[str, Any]:
        return {
            "access_token": self._access_token(user, session),
            "token_type": "bearer",
            "expires_in": self.access_token_ttl,
            "expires_at": int(time.time()) + self.access_token_ttl,
            "refresh_token": session.active_refresh,
            "user": self._user_body(user),
        }

    def _user_body(self, user: User, *, identities: bool = True) -> dict[str, Any]:
        identity = {
            "id": user.id,
            "identity_id": str(uuid.uuid5(uuid.NAMESPACE_URL, user.id)),
            "user_id": user.id,
            "identity_data": {"email": user.email, "sub": user.id},
            "provider": user.provider,
            "created_at": user.created_at,
            "last_sign_in_at": user.last_sign_in_at,
            "updated_at": user.created_at,
        }
        body: dict[str, Any] = {
            "id": user.id,
            "aud": "authenticated",
            "role": "authenticated",
            "email": user.email,
            "phone": "",
            "email_confirmed_at": user.confirmed_at,
            "confirmed_at": user.confirmed_at,
            "last_sign_in_at": user.last_sign_in_at,
            "app_metadata": {"provider": user.provider, "providers": [user.provider]},
            "user_metadata": user.user_metadata,
            "identities": [identity] if identities else [],
            "created_at": user.created_at,
            "updated_at": user.created_at,
            "is_anonymous": False,
        }
        if user.banned_until is not None:  # omitempty in GoTrue
            body["banned_until"] = datetime.fromtimestamp(user.banned_until, UTC).isoformat()
        if user.factors:  # GoTrue omits the key when there are none
            body["factors"] = [
                {
                    "id": f.id,
                    "friendly_name": f.friendly_name,
                    "factor_type": "totp",
                    "status": f.status,
                    "created_at": f.created_at,
                    "updated_at": f.updated_at,
                }
                for f in user.factors.values()
            ]
        return body

    def _authenticate(self, request: Request) -> tuple[User, Session]:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        try:
            if self.sign_hs256:
                claims = jwt.decode(
                    token, JWT_SECRET, algorithms=["HS256"], audience="authenticated"
                )
            else:
                kid = jwt.get_unverified_header(token).get("kid")
                key = next(k for k_id, k in self.keys if k_id == kid)
                claims = jwt.decode(
                    token, key.public_key(), algorithms=["ES256"], audience="authenticated"
                )
        except (jwt.PyJWTError, StopIteration) as exc:
            raise GoTrueError(403, "bad_jwt", "invalid JWT: unable to parse or verify") from exc
        session = self.sessions.get(claims.get("session_id", ""))
        if session is None:
            raise GoTrueError(403, "session_not_found", "Session from session_id does not exist")
        user = self.users.get(claims["sub"])
        if user is None:
            raise GoTrueError(403, "user_not_found", "User from sub claim in JWT does not exist")
        if user.is_banned():  # requireAuthentication refuses tokens from before the ban
            raise GoTrueError(403, "user_banned", "User is banned")
        return user, session

    def _require_service_role(self, request: Request) -> None:
        if request.headers.get("authorization", "") != f"Bearer {SERVICE_ROLE_KEY}":
            raise GoTrueError(403, "not_admin", "User not allowed")

    def _new_otp(self, email: str, type_: str, redirect_to: str | None = None) -> None:
        token = f"{secrets.randbelow(10**6):06d}"
        token_hash = hashlib.sha224(f"{email}{token}{secrets.token_hex(4)}".encode()).hexdigest()
        self.otps.append(Otp(email, type_, token, token_hash, time.time() + self.otp_ttl))
        self.outbox.append(
            {
                "email": email,
                "type": type_,
                "token": token,
                "token_hash": token_hash,
                "redirect_to": redirect_to,
            }
        )

    @staticmethod
    def _check_password(password: str) -> None:
        reasons = []
        if len(password) < 8:
            reasons.append("length")
        if password.isalpha() or password.isdigit():
            reasons.append("characters")
        if reasons:
            raise GoTrueError(
                422,
                "weak_password",
                "Password should be at least 8 characters and mix letters and digits.",
                weak_password={"reasons": reasons},
            )

    # --- endpoints ---------------------------------------------------------------------------
    async def signup(self, request: Request, body: dict[str, Any]) -> Response:
        email = str(body.get("email", "")).lower()
        password = str(body.get("password", ""))
        if not email or not password:
            raise GoTrueError(400, "validation_failed", "email and password required")
        self._check_password(password)
        existing = self.user_by_email(email)
        if existing is not None:
            if self.autoconfirm:
                raise GoTrueError(422, "user_already_exists", "User already registered")
            fake = User(id=str(uuid.uuid4()), email=email, password="")
            return JSONResponse(self._user_body(fake, identities=False))
        user = self.create_user(email, password, confirmed=self.autoconfirm)
        user.user_metadata = dict(body.get("data") or {})
        if self.autoconfirm:
            return JSONResponse(
                self._session_body(user, self._new_session(user, "aal1", "password"))
            )
        self._new_otp(email, "signup", request.query_params.get("redirect_to"))
        body_ = self._user_body(user)
        body_["confirmation_sent_at"] = _now_iso()
        return JSONResponse(body_)

    async def token(self, request: Request, body: dict[str, Any]) -> Response:
        grant = request.query_params.get("grant_type")
        if grant == "password":
            user = self.user_by_email(str(body.get("email", "")))
            if user is not None and user.password and user.is_banned():
                # GoTrue checks the ban before the password.
                raise GoTrueError(400, "user_banned", "User is banned")
            if user is None or not secrets.compare_digest(
                user.password.encode(), str(body.get("password", "")).encode()
            ):
                raise GoTrueError(400, "invalid_credentials", "Invalid login credentials")
            if user.confirmed_at is None:
                raise GoTrueError(400, "email_not_confirmed", "Email not confirmed")
            session = self._new_session(user, "aal1", "password")
            return JSONResponse(self._session_body(user, session))
        if grant == "refresh_token":
            token = str(body.get("refresh_token", ""))
            session_id = self.refresh_tokens.get(token)
            session = self.sessions.get(session_id or "")
            if session is None:
                raise GoTrueError(
                    400, "refresh_token_not_found", "Invalid Refresh Token: Not Found"
                )
            user = self.users[session.user_id]
            if user.is_banned():
                raise GoTrueError(400, "user_banned", "Invalid Refresh Token: User Banned")
            if token in self.spent_refresh:
                if token == session.parent_refresh:
                    # Reuse of the immediate parent (e.g. a retried request): same active token.
                    return JSONResponse(self._session_body(user, session))
                del self.sessions[session.id]
                raise GoTrueError(
                    400, "refresh_token_already_used", "Invalid Refresh Token: Already Used"
                )
            self._issue_refresh(session)
            return JSONResponse(self._session_body(user, session))
        if grant == "pkce":
            flow = self.flow_states.pop(str(body.get("auth_code", "")), None)
            if flow is None:
                raise GoTrueError(
                    404, "flow_state_not_found", "invalid flow state, no valid flow state found"
                )
            user_id, challenge, _ = flow
            verifier = str(body.get("code_verifier", ""))
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            if not secrets.compare_digest(digest.rstrip(b"=").decode(), challenge):
                raise GoTrueError(
                    400,
                    "bad_code_verifier",
                    "code challenge does not match previously saved code verifier",
                )
            user = self.users[user_id]
            return JSONResponse(self._session_body(user, self._new_session(user, "aal1", "oauth")))
        raise GoTrueError(400, "validation_failed", "unsupported_grant_type")

    async def otp(self, request: Request, body: dict[str, Any]) -> Response:
        email = str(body.get("email", "")).lower()
        user = self.user_by_email(email)
        if user is None:
            if not body.get("create_user", True):
                raise GoTrueError(422, "otp_disabled", "Signups not allowed for otp")
            user = self.create_user(email, secrets.token_urlsafe(12), confirmed=False)
            self._new_otp(email, "signup", request.query_params.get("redirect_to"))
        else:
            self._new_otp(email, "magiclink", request.query_params.get("redirect_to"))
        return JSONResponse({})

    async def verify(self, request: Request, body: dict[str, Any]) -> Response:
        type_ = str(body.get("type", ""))
        token_hash, token = body.get("token_hash"), body.get("token")
        email = str(body.get("email") or "").lower()
        now = time.time()
        match = None
        for otp in self.otps:
            same_type = otp.type == type_ or {otp.type, type_} <= {"magiclink", "email", "signup"}
            if not same_type:
                continue
            if (token_hash and secrets.compare_digest(otp.token_hash, str(token_hash))) or (
                token and otp.email == email and secrets.compare_digest(otp.token, str(token))
            ):
                match = otp
                break
        if match is None or match.expires_at < now:
            raise GoTrueError(403, "otp_expired", "Token has expired or is invalid")
        self.otps.remove(match)
        user = self.user_by_email(match.email)
        if user is None:
            raise GoTrueError(403, "otp_expired", "Token has expired or is invalid")
        if user.is_banned():
            raise GoTrueError(403, "user_banned", "User is banned")
        user.confirmed_at = user.confirmed_at or _now_iso()
        session = self._new_session(user, "aal1", "otp")
        return JSONResponse(self._session_body(user, session))

    async def resend(self, request: Request, body: dict[str, Any]) -> Response:
        user = self.user_by_email(str(body.get("email", "")))
        if user is not None and user.confirmed_at is None:
            self._new_otp(user.email, "signup", request.query_params.get("redirect_to"))
        return JSONResponse({})

    async def recover(self, request: Request, body: dict[str, Any]) -> Response:
        user = self.user_by_email(str(body.get("email", "")))
        if user is not None:
            self._new_otp(user.email, "recovery", request.query_params.get("redirect_to"))
        return JSONResponse({})

    async def get_user(self, request: Request, body: dict[str, Any]) -> Response:
        user, _ = self._authenticate(request)
        return JSONResponse(self._user_body(user))

    async def put_user(self, request: Request, body: dict[str, Any]) -> Response:
        user, session = self._authenticate(request)
        if any(f.status == "verified" for f in user.factors.values()) and session.aal != "aal2":
            raise GoTrueError(401, "insufficient_aal", "AAL2 required to update user")
        if "password" in body:
            self._check_password(str(body["password"]))
            user.password = str(body["password"])
            for other in [s for s in self.sessions.values() if s.user_id == user.id]:
                if other.id != session.id:
                    del self.sessions[other.id]
        if isinstance(body.get("data"), dict):
            user.user_metadata.update(body["data"])
        return JSONResponse(self._user_body(user))

    async def logout(self, request: Request, body: dict[str, Any]) -> Response:
        user, session = self._authenticate(request)
        scope = request.query_params.get("scope", "global")
        for other in [s for s in self.sessions.values() if s.user_id == user.id]:
            if scope == "global" or (scope == "local") == (other.id == session.id):
                del self.sessions[other.id]
        return Response(status_code=204)

    async def authorize(self, request: Request, body: dict[str, Any]) -> Response:
        q = request.query_params
        provider = q.get("provider", "")
        if provider not in OAUTH_PROVIDERS:
            raise GoTrueError(
                400, "validation_failed", "Unsupported provider: Provider is not enabled"
            )
        challenge, redirect_to = q.get("code_challenge"), q.get("redirect_to")
        if not challenge or q.get("code_challenge_method", "").lower() != "s256" or not redirect_to:
            raise GoTrueError(400, "validation_failed", "PKCE with s256 and redirect_to required")
        # The provider's consent screen is simulated: `oauth_email` signs in at once.
        user = self.user_by_email(self.oauth_email) or self.create_user(self.oauth_email, "")
        user.provider = provider
        code = str(uuid.uuid4())
        self.flow_states[code] = (user.id, challenge, provider)
        parts = urlsplit(redirect_to)
        query = [*parse_qsl(parts.query), ("code", code)]
        return RedirectResponse(urlunsplit(parts._replace(query=urlencode(query))), 302)

    async def factors(self, request: Request, body: dict[str, Any]) -> Response:
        user, _ = self._authenticate(request)
        if body.get("factor_type") != "totp":
            raise GoTrueError(422, "validation_failed", "Only totp is supported here")
        factor = Factor(
            id=str(uuid.uuid4()),
            friendly_name=str(body.get("friendly_name") or f"totp-{len(user.factors) + 1}"),
            secret=pyotp.random_base32(),
        )
        user.factors[factor.id] = factor
        uri = pyotp.TOTP(factor.secret).provisioning_uri(name=user.email, issuer_name="standin")
        return JSONResponse(
            {
                "id": factor.id,
                "type": "totp",
                "friendly_name": factor.friendly_name,
                "totp": {"qr_code": "<svg/>", "secret": factor.secret, "uri": uri},
            }
        )

    def _factor(self, user: User, request: Request) -> Factor:
        factor = user.factors.get(request.path_params["factor_id"])
        if factor is None:
            raise GoTrueError(404, "mfa_factor_not_found", "Factor not found")
        return factor

    async def challenge(self, request: Request, body: dict[str, Any]) -> Response:
        user, _ = self._authenticate(request)
        factor = self._factor(user, request)
        challenge_id, expires_at = str(uuid.uuid4()), time.time() + 300
        self.challenges[challenge_id] = (factor.id, expires_at)
        return JSONResponse({"id": challenge_id, "type": "totp", "expires_at": int(expires_at)})

    async def factor_verify(self, request: Request, body: dict[str, Any]) -> Response:
        user, session = self._authenticate(request)
        factor = self._factor(user, request)
        found = self.challenges.get(str(body.get("challenge_id", "")))
        if found is None or found[0] != factor.id:
            raise GoTrueError(404, "mfa_challenge_expired", "Challenge not found")
        if found[1] < time.time():
            raise GoTrueError(422, "mfa_challenge_expired", "Challenge expired")
        if not pyotp.TOTP(factor.secret).verify(str(body.get("code", "")), valid_window=1):
            raise GoTrueError(422, "mfa_verification_failed", "Invalid TOTP code entered")
        del self.challenges[str(body["challenge_id"])]
        factor.status, factor.updated_at = "verified", _now_iso()
        session.aal = "aal2"
        session.amr = [{"method": "totp", "timestamp": int(time.time())}, *session.amr]
        self._issue_refresh(session)
        return JSONResponse(self._session_body(user, session))

    async def unenroll(self, request: Request, body: dict[str, Any]) -> Response:
        user, session = self._authenticate(request)
        factor = self._factor(user, request)
        if factor.status == "verified" and session.aal != "aal2":
            raise GoTrueError(401, "insufficient_aal", "AAL2 required to unenroll verified factor")
        del user.factors[factor.id]
        return JSONResponse({"id": factor.id})

    async def admin_users(self, request: Request, body: dict[str, Any]) -> Response:
        self._require_service_role(request)
        if request.method == "GET":
            page = int(request.query_params.get("page") or 1)
            per_page = int(request.query_params.get("per_page") or 50)
            users = sorted(self.users.values(), key=lambda u: u.created_at)
            chunk = users[(page - 1) * per_page : page * per_page]
            return JSONResponse(
                {"users": [self._user_body(u) for u in chunk], "aud": "authenticated"}
            )
        email = str(body.get("email", "")).lower()
        if self.user_by_email(email) is not None:
            raise GoTrueError(
                422, "email_exists", "A user with this email address has already been registered"
            )
        user = self.create_user(
            email, str(body.get("password", "")), bool(body.get("email_confirm"))
        )
        return JSONResponse(self._user_body(user))

    async def admin_user(self, request: Request, body: dict[str, Any]) -> Response:
        self._require_service_role(request)
        user = self.users.get(request.path_params["user_id"])
        if user is None:
            raise GoTrueError(404, "user_not_found", "User not found")
        if request.method == "DELETE":
            del self.users[user.id]
            for s in [s for s in self.sessions.values() if s.user_id == user.id]:
                del self.sessions[s.id]
            return JSONResponse({})
        if request.method == "PUT":
            duration = body.get("ban_duration")
            if isinstance(duration, str) and duration:
                # As GoTrue's User.Ban: "none" (or a zero duration) lifts the ban; sessions stay.
                seconds = 0.0 if duration == "none" else _go_duration_seconds(duration)
                user.banned_until = time.time() + seconds if seconds else None
            return JSONResponse(self._user_body(user))
        return JSONResponse(self._user_body(user))

    async def jwks(self, request: Request, body: dict[str, Any]) -> Response:
        self.jwks_hits += 1
        keys = []
        for kid, key in self.keys:
            jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "alg": "ES256", "use": "sig", "key_ops": ["verify"]})
        return JSONResponse({"keys": keys}, headers={"Cache-Control": "max-age=600"})

    # --- plumbing ----------------------------------------------------------------------------
    def _routes(self) -> list[Route]:
        table = [
            ("/signup", self.signup, ["POST"]),
            ("/token", self.token, ["POST"]),
            ("/otp", self.otp, ["POST"]),
            ("/verify", self.verify, ["POST"]),
            ("/resend", self.resend, ["POST"]),
            ("/recover", self.recover, ["POST"]),
            ("/user", self.get_user, ["GET"]),
            ("/user", self.put_user, ["PUT"]),
            ("/logout", self.logout, ["POST"]),
            ("/authorize", self.authorize, ["GET"]),
            ("/factors", self.factors, ["POST"]),
            ("/factors/{factor_id}/challenge", self.challenge, ["POST"]),
            ("/factors/{factor_id}/verify", self.factor_verify, ["POST"]),
            ("/factors/{factor_id}", self.unenroll, ["DELETE"]),
            ("/admin/users", self.admin_users, ["GET", "POST"]),
            ("/admin/users/{user_id}", self.admin_user, ["GET", "PUT", "DELETE"]),
            ("/.well-known/jwks.json", self.jwks, ["GET"]),
        ]
        return [Route("/auth/v1" + path, self._wrap(fn), methods=m) for path, fn, m in table]

    def _wrap(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            versioned = request.headers.get("x-supabase-api-version") == API_VERSION
            with self.lock:
                self.requests.append(
                    {
                        "method": request.method,
                        "path": request.url.path,
                        "x_forwarded_for": request.headers.get("x-forwarded-for"),
                        "apikey": request.headers.get("apikey"),
                    }
                )
                failure = next(
                    (f for f in self.failures if f.path in (None, request.url.path)), None
                )
                if failure is not None:
                    self.failures.remove(failure)
            headers = {"X-Supabase-Api-Version": API_VERSION} if versioned else {}
            if failure is not None:
                if failure.delay:
                    await asyncio.sleep(failure.delay)
                if failure.code is None:
                    return Response("upstream exploded", failure.status, media_type="text/plain")
                return self._error(GoTrueError(failure.status, failure.code, "forced"), versioned)
            # Like Supabase's gateway: browser-facing routes are open, the rest needs an apikey.
            open_route = request.url.path in OPEN_PATHS
            if not open_route and request.headers.get("apikey") not in (ANON_KEY, SERVICE_ROLE_KEY):
                return self._error(GoTrueError(401, "no_api_key", "Invalid API key"), versioned)
            try:
                raw = await request.body()
                body = await request.json() if raw else {}
                with self.lock:
                    response = await handler(request, body if isinstance(body, dict) else {})
            except GoTrueError as exc:
                return self._error(exc, versioned)
            response.headers.update(headers)
            return response

        return endpoint

    @staticmethod
    def _error(exc: GoTrueError, versioned: bool) -> Response:
        if versioned:
            body: dict[str, Any] = {"code": exc.code, "message": exc.message, **exc.extra}
            headers = {"X-Supabase-Api-Version": API_VERSION}
        else:
            body = {"code": exc.status, "error_code": exc.code, "msg": exc.message, **exc.extra}
            headers = {}
        return JSONResponse(body, status_code=exc.status, headers=headers)


class ServedStandIn:
    """Runs a `GoTrueStandIn` under uvicorn on 127.0.0.1 in a daemon thread."""

    def __init__(self, standin: GoTrueStandIn) -> None:
        self.standin = standin
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        port = self.sock.getsockname()[1]
        standin.base_url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            standin.app, log_level="warning", lifespan="off", ws="none", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> GoTrueStandIn:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("GoTrue stand-in did not start")
            time.sleep(0.02)
        return self.standin

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
