"""`IdentityProvider` in our own database, with GoTrue's observable semantics.

See ../shared/contracts/NOTES.md and docs/identity-local.md. The adapter owns its transactions
(as Supabase Auth is its own service): each operation commits on its own, before the users
domain writes the profile in the request's session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import jwt
import pyotp
import segno
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_service.config import Settings
from auth_service.core.errors import AppError
from auth_service.core.kv import KeyValueStore
from auth_service.identity import errors
from auth_service.identity.local.email import EmailSender, OutgoingEmail
from auth_service.identity.local.models import (
    LocalEmailToken,
    LocalIdentity,
    LocalMfaChallenge,
    LocalMfaFactor,
    LocalOAuthFlow,
    LocalSession,
    LocalUser,
)
from auth_service.identity.local.oidc import (
    OidcError,
    OidcIdentity,
    OidcProviderDisabled,
    OidcUpstreams,
)
from auth_service.identity.local.passwords import PasswordHasher, PasswordPolicy
from auth_service.identity.local.repository import LocalIdentityRepository
from auth_service.identity.port import (
    CallerContext,
    IdentitySession,
    IdentityUser,
    LogoutScope,
    MfaChallenge,
    MfaFactor,
    OtpType,
    ResendType,
    SignUpResult,
    TotpEnrollment,
)
from auth_service.oauth2.keys import KeyEncryptor, KeyManager

logger = logging.getLogger("auth_service.identity.local")

AUDIENCE = "authenticated"
OAUTH_FLOW_TTL_SECONDS = 600
# Which stored token types each `verify` type accepts (GoTrue: "email" covers both).
_VERIFY_TYPES: dict[str, tuple[str, ...]] = {
    "signup": ("signup",),
    "invite": ("signup",),
    "magiclink": ("magiclink",),
    "email": ("signup", "magiclink"),
    "recovery": ("recovery",),
    "email_change": ("email_change",),
}
_SUBJECTS = {
    "signup": "Confirm your email",
    "magiclink": "Your sign-in link",
    "recovery": "Reset your password",
    "email_change": "Confirm your new email",
}


@dataclass(frozen=True, slots=True)
class _Auth:
    """A verified access token whose session still exists."""

    user: LocalUser
    session: LocalSession
    claims: Mapping[str, Any]


def _now() -> datetime:
    return datetime.now(UTC)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _identity_user(user: LocalUser) -> IdentityUser:
    return IdentityUser(
        id=user.id,
        email=user.email,
        email_confirmed=user.email_confirmed_at is not None,
        created_at=user.created_at,
        last_sign_in_at=user.last_sign_in_at,
        user_metadata=dict(user.user_metadata or {}),
        banned_until=user.banned_until,
    )


def _banned(user: LocalUser, now: datetime) -> bool:
    return user.banned_until is not None and user.banned_until > now


class LocalIdentityProvider:
    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        keys: KeyManager,
        settings: Settings,
        kv: KeyValueStore,
        sender: EmailSender,
        hasher: PasswordHasher | None = None,
        policy: PasswordPolicy | None = None,
        upstreams: OidcUpstreams | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.keys = keys
        self.settings = settings
        self.kv = kv
        self.sender = sender
        self.hasher = hasher or PasswordHasher.from_settings(settings)
        self.policy = policy or PasswordPolicy.from_settings(settings)
        self.upstreams = upstreams
        self.base_url = settings.issuer.rstrip("/")
        self.issuer = self.base_url + "/auth/v1"
        secret = settings.signing_key_encryption_key.get_secret_value()
        self._encryptor = KeyEncryptor(secret)
        # Separate keys per use, derived from the one secret.
        self._refresh_key = hashlib.sha256(b"local refresh tokens\x00" + secret.encode()).digest()
        self._otp_key = hashlib.sha256(b"local email otp\x00" + secret.encode()).digest()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[LocalIdentityRepository]:
        """One transaction; `_Commit` keeps its writes and raises the error it carries."""
        async with self.session_factory() as session:
            try:
                yield LocalIdentityRepository(session)
            except _Commit as kept:
                await session.commit()
                raise kept.error from None
            except BaseException:
                await session.rollback()
                raise
            await session.commit()

    # --- tokens -------------------------------------------------------------------------------
    def _refresh_plain(self, session_id: uuid.UUID, token_id: int) -> str:
        """Derived, not stored: the digest is in the table, and the reuse window can hand
        back the current token without keeping it in the clear."""
        mac = hmac.new(self._refresh_key, f"{session_id}.{token_id}".encode(), hashlib.sha256)
        return _b64(mac.digest())

    async def _new_refresh(
        self, repo: LocalIdentityRepository, session_id: uuid.UUID, parent_id: int | None
    ) -> str:
        row = await repo.add_refresh_token(session_id, parent_id)
        plain = self._refresh_plain(session_id, row.id)
        row.token_hash = _digest(plain)
        await repo.session.flush()
        return plain

    async def _issue(
        self,
        repo: LocalIdentityRepository,
        user: LocalUser,
        session: LocalSession,
        refresh_token: str,
    ) -> IdentitySession:
        rbac = await repo.rbac_claims(user.id)
        ttl = self.settings.access_token_ttl_seconds
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": str(user.id),
            "aud": AUDIENCE,
            "exp": now + ttl,
            "iat": now,
            # Not in GoTrue's tokens; auth_service.verifier requires one (and it costs nothing).
            "jti": secrets.token_hex(16),
            "email": user.email,
            "phone": "",
            "app_metadata": dict(user.app_metadata or {}),
            "user_metadata": dict(user.user_metadata or {}),
            "role": "authenticated",
            "aal": session.aal,
            "amr": list(session.amr or []),
            "session_id": str(session.id),
            "is_anonymous": False,
            "roles": list(rbac.get("roles", [])),
            "permissions": list(rbac.get("permissions", [])),
        }
        token = self.keys.ring.sign(claims)
        # As supabase-js's getAuthenticatorAssuranceLevel: aal2 is reachable once a factor is.
        verified = await repo.has_verified_factor(user.id)
        return IdentitySession(
            access_token=token,
            refresh_token=refresh_token,
            expires_in=ttl,
            expires_at=now + ttl,
            user=_identity_user(user),
            aal=session.aal,
            next_aal="aal2" if verified else session.aal,
        )

    async def _start_session(
        self, repo: LocalIdentityRepository, user: LocalUser, method: str
    ) -> IdentitySession:
        now = _now()
        user.last_sign_in_at = now
        session = await repo.add_session(
            user.id, "aal1", [{"method": method, "timestamp": int(now.timestamp())}]
        )
        return await self._issue(
            repo, user, session, await self._new_refresh(repo, session.id, None)
        )

    def decode(self, token: str) -> dict[str, Any] | None:
        """Claims of a user token we signed and that has not expired (no session check)."""
        try:
            header = jwt.get_unverified_header(token)
            key = self.keys.ring.verification.get(str(header.get("kid")))
            if key is None:
                return None
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=AUDIENCE,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "aud", "iss", "session_id"]},
            )
            uuid.UUID(str(claims["sub"]))
            uuid.UUID(str(claims["session_id"]))
        except (jwt.PyJWTError, ValueError, TypeError):
            return None
        return claims

    async def _authenticate(self, repo: LocalIdentityRepository, access_token: str) -> _Auth:
        """GoTrue's `requireAuthentication`: a valid JWT whose session and user still exist."""
        claims = self.decode(access_token)
        if claims is None:
            raise errors.SessionNotFound()
        session = await repo.session_by_id(uuid.UUID(str(claims["session_id"])))
        if session is None or str(session.user_id) != str(claims["sub"]):
            raise errors.SessionNotFound()
        user = await repo.user(session.user_id)
        if user is None:
            raise errors.SessionNotFound()
        if _banned(user, _now()):  # GoTrue: a token from before the ban is refused too
            raise errors.UserBanned()
        return _Auth(user, session, claims)

    # --- sign-up and sign-in ------------------------------------------------------------------
    def _check_password(self, password: str) -> None:
        reasons = self.policy.reasons(password)
        if reasons:
            raise errors.WeakPassword(reasons)

    async def sign_up(
        self,
        email: str,
        password: str,
        *,
        data: dict[str, Any],
        redirect_to: str | None,
        ctx: CallerContext,
    ) -> SignUpResult:
        email = normalize_email(email)
        self._check_password(password)
        autoconfirm = self.settings.autoconfirm
        async with self._tx() as repo:
            existing = await repo.user_by_email(email)
        if existing is None:
            hashed = await self.hasher.hash(password)
            async with self._tx() as repo:
                user = await repo.add_user(
                    LocalUser(
                        id=uuid.uuid4(),
                        email=email,
                        encrypted_password=hashed,
                        email_confirmed_at=_now() if autoconfirm else None,
                        user_metadata=dict(data),
                        app_metadata={"provider": "email", "providers": ["email"]},
                    )
                )
                if user is not None:
                    if autoconfirm:
                        session = await self._start_session(repo, user, "password")
                        return SignUpResult(user=_identity_user(user), session=session)
                    await self._send_token(repo, user, "signup", redirect_to)
                    return SignUpResult(user=_identity_user(user), session=None)
            async with self._tx() as repo:  # lost a race for this email
                existing = await repo.user_by_email(email)
        if autoconfirm:
            raise errors.UserAlreadyExists()
        # Confirmation on: answer as for a new user (GoTrue's obfuscated user), and resend the
        # confirmation to an address that has not confirmed yet.
        if existing is not None and existing.email_confirmed_at is None:
            async with self._tx() as repo:
                user = await repo.user(existing.id)
                if user is not None:
                    await self._send_token(repo, user, "signup", redirect_to)
        return SignUpResult(
            user=IdentityUser(id=uuid.uuid4(), email=email), session=None, obfuscated=True
        )

    async def sign_in_with_password(
        self, email: str, password: str, *, ctx: CallerContext
    ) -> IdentitySession:
        email = normalize_email(email)
        await self._check_lockout(email)
        async with self._tx() as repo:
            user = await repo.user_by_email(email)
            stored = user.encrypted_password if user else None
        # Hash work outside any transaction: no connection held for tens of milliseconds.
        valid, new_hash = await self.hasher.verify(password, stored)
        if user is None or not valid:
            await self._record_failure(email)
            raise errors.InvalidCredentials()
        await self._clear_failures(email)
        async with self._tx() as repo:
            user = await repo.user(user.id)
            if user is None:
                raise errors.InvalidCredentials()
            if user.email_confirmed_at is None:
                raise errors.EmailNotConfirmed()
            if _banned(user, _now()):
                raise errors.UserBanned()
            if new_hash:  # imported bcrypt or old parameters: upgrade to argon2id now
                user.encrypted_password = new_hash
            return await self._start_session(repo, user, "password")

    # --- per-account lockout (ASVS V2.2.1) ----------------------------------------------------
    # Keyed by the address, not the account, so unknown emails lock out exactly like known
    # ones and the lockout says nothing about existence.
    def _lockout_key(self, email: str) -> str:
        return "lockout:login:" + _digest(email)

    async def _failures(self, email: str) -> tuple[int, float, float]:
        raw = await self.kv.get(self._lockout_key(email))
        if not raw:
            return 0, 0.0, 0.0
        count, start, last = raw.split(",")
        return int(count), float(start), float(last)

    def _locked_for(self, count: int, start: float, last: float, now: float) -> float:
        if count >= self.settings.login_lockout_max_failures_per_hour:
            return max(0.0, start + 3600 - now)
        over = count - self.settings.login_lockout_threshold
        if over < 0:
            return 0.0
        return max(0.0, last + min(2.0**over, 900.0) - now)  # 1 s, 2 s, 4 s, ... 15 min

    async def _check_lockout(self, email: str) -> None:
        count, start, last = await self._failures(email)
        wait = self._locked_for(count, start, last, time.time())
        if wait > 0:
            raise errors.IdentityRateLimited(headers={"Retry-After": str(int(wait) + 1)})

    async def _record_failure(self, email: str) -> None:
        now = time.time()
        count, start, _ = await self._failures(email)
        if not count or now - start >= 3600:
            count, start = 0, now
        await self.kv.set(self._lockout_key(email), f"{count + 1},{start},{now}", 3600)

    async def _clear_failures(self, email: str) -> None:
        count, _, _ = await self._failures(email)
        if count:
            await self.kv.delete(self._lockout_key(email))

    # --- refresh --------------------------------------------------------------------------------
    async def refresh(self, refresh_token: str, *, ctx: CallerContext) -> IdentitySession:
        digest = _digest(refresh_token)
        async with self._tx() as repo:
            row = await repo.refresh_token(digest)
            if row is None:
                raise errors.InvalidRefreshToken()  # GoTrue: refresh_token_not_found
            # One rotation per session at a time: concurrent refreshes queue on this lock.
            session = await repo.session_by_id(row.session_id, lock=True)
            row = await repo.refresh_token(digest)  # re-read under the lock
            if session is None or row is None:
                raise errors.InvalidRefreshToken()
            user = await repo.user(session.user_id)
            if user is None:
                raise errors.InvalidRefreshToken()
            if _banned(user, _now()):
                raise errors.UserBanned()  # GoTrue: "Invalid Refresh Token: User Banned"
            if row.revoked:
                child = await repo.active_child(row.id)
                window = timedelta(seconds=self.settings.refresh_token_reuse_interval_seconds)
                if child is not None and _now() - row.updated_at <= window:
                    # The immediate parent, just rotated: hand back the current token.
                    current = self._refresh_plain(session.id, child.id)
                    return await self._issue(repo, user, session, current)
                await repo.revoke_family(session.id)
                logger.warning(
                    "refresh token reused; session revoked", extra={"session_id": str(session.id)}
                )
                raise _Commit(errors.InvalidRefreshToken())  # GoTrue: refresh_token_already_used
            row.revoked = True
            row.updated_at = _now()
            session.updated_at = _now()
            plain = await self._new_refresh(repo, session.id, row.id)
            return await self._issue(repo, user, session, plain)

    # --- sign-out, password, user -------------------------------------------------------------
    async def sign_out(self, access_token: str, *, scope: LogoutScope, ctx: CallerContext) -> None:
        async with self._tx() as repo:
            auth = await self._authenticate(repo, access_token)
            if scope == "local":
                await repo.delete_sessions(auth.user.id, only=auth.session.id)
            elif scope == "others":
                await repo.delete_sessions(auth.user.id, keep=auth.session.id)
            else:
                await repo.delete_sessions(auth.user.id)

    async def update_password(
        self, access_token: str, password: str, *, ctx: CallerContext
    ) -> IdentityUser:
        async with self._tx() as repo:
            auth = await self._authenticate(repo, access_token)
            if auth.session.aal != "aal2" and await repo.has_verified_factor(auth.user.id):
                raise errors.InsufficientAal()
        self._check_password(password)
        hashed = await self.hasher.hash(password)
        async with self._tx() as repo:
            user = await repo.user(auth.user.id)
            if user is None:
                raise errors.SessionNotFound()
            user.encrypted_password = hashed
            # As GoTrue: a new password signs out every other session.
            await repo.delete_sessions(user.id, keep=auth.session.id)
            return _identity_user(user)

    async def get_user(self, access_token: str, *, ctx: CallerContext) -> IdentityUser:
        async with self._tx() as repo:
            return _identity_user((await self._authenticate(repo, access_token)).user)

    # --- email flows ----------------------------------------------------------------------------
    def _otp_digest(self, user_id: uuid.UUID, code: str) -> str:
        return hmac.new(self._otp_key, f"{user_id}:{code}".encode(), hashlib.sha256).hexdigest()

    async def _send_token(
        self,
        repo: LocalIdentityRepository,
        user: LocalUser,
        type_: str,
        redirect_to: str | None,
    ) -> None:
        """One live token per user and type (a new one supersedes the last), then the mail."""
        await repo.supersede_email_tokens(user.id, type_)
        token_hash = secrets.token_urlsafe(32)
        code = f"{secrets.randbelow(1_000_000):06d}"
        await repo.add_email_token(
            LocalEmailToken(
                user_id=user.id,
                type=type_,
                token_hash=_digest(token_hash),
                otp_hash=self._otp_digest(user.id, code),
                expires_at=_now() + timedelta(seconds=self.settings.email_token_ttl_seconds),
            )
        )
        target = redirect_to or self.settings.local_site_url
        sep = "&" if "?" in target else "?"
        link_type = "email" if type_ in ("signup", "magiclink") else type_
        link = f"{target}{sep}{urlencode({'token_hash': token_hash, 'type': link_type})}"
        minutes = self.settings.email_token_ttl_seconds // 60
        body = (
            f"{_SUBJECTS[type_]}.\n\nOpen this link:\n{link}\n\nor enter this code: {code}\n\n"
            f"It expires in {minutes} minutes and works once. If you did not ask for it,"
            " ignore this email.\n"
        )
        await self.sender.send(
            OutgoingEmail(
                to=user.email,
                subject=_SUBJECTS[type_],
                body=body,
                meta={
                    "type": type_,
                    "token": code,
                    "token_hash": token_hash,
                    "link": link,
                    "redirect_to": redirect_to,
                },
            )
        )

    async def send_magic_link(
        self, email: str, *, create_user: bool, redirect_to: str | None, ctx: CallerContext
    ) -> None:
        email = normalize_email(email)
        async with self._tx() as repo:
            user = await repo.user_by_email(email)
            if user is None:
                if not create_user:
                    raise errors.OtpSignupsDisabled()
                user = await repo.add_user(
                    LocalUser(
                        id=uuid.uuid4(),
                        email=email,
                        app_metadata={"provider": "email", "providers": ["email"]},
                    )
                )
                if user is None:
                    return  # created concurrently; that request sends the mail
            kind = "magiclink" if user.email_confirmed_at is not None else "signup"
            await self._send_token(repo, user, kind, redirect_to)

    async def resend(
        self, *, type: ResendType, email: str, redirect_to: str | None, ctx: CallerContext
    ) -> None:
        async with self._tx() as repo:
            user = await repo.user_by_email(normalize_email(email))
            # Same (empty) answer for unknown and already confirmed addresses.
            if type == "signup" and user is not None and user.email_confirmed_at is None:
                await self._send_token(repo, user, "signup", redirect_to)

    async def reset_password(
        self, email: str, *, redirect_to: str | None, ctx: CallerContext
    ) -> None:
        async with self._tx() as repo:
            user = await repo.user_by_email(normalize_email(email))
            if user is not None:
                await self._send_token(repo, user, "recovery", redirect_to)

    async def verify_otp(
        self,
        *,
        type: OtpType,
        email: str | None,
        token: str | None,
        token_hash: str | None,
        ctx: CallerContext,
    ) -> IdentitySession:
        types = _VERIFY_TYPES[type]
        now = _now()
        async with self._tx() as repo:
            row = await self._find_email_token(repo, types, email, token, token_hash, now)
            user = await repo.user(row.user_id)
            if user is None:
                raise errors.OtpExpired()
            if _banned(user, now):
                raise errors.UserBanned()
            row.used_at = now
            if row.type in ("signup", "magiclink") and user.email_confirmed_at is None:
                user.email_confirmed_at = now
            method = "recovery" if row.type == "recovery" else "otp"
            return await self._start_session(repo, user, method)

    async def _find_email_token(
        self,
        repo: LocalIdentityRepository,
        types: tuple[str, ...],
        email: str | None,
        code: str | None,
        token_hash: str | None,
        now: datetime,
    ) -> LocalEmailToken:
        max_attempts = self.settings.email_token_max_attempts
        if token_hash:
            row = await repo.email_token_by_hash(_digest(token_hash))
            if row is None or row.type not in types or row.used_at or row.expires_at <= now:
                raise errors.OtpExpired()
            return row
        user = await repo.user_by_email(normalize_email(email or ""))
        if user is None or not code:
            raise errors.OtpExpired()
        candidates = list(await repo.open_email_tokens(user.id, types, now))
        wanted = self._otp_digest(user.id, code)
        for row in candidates:
            if row.attempts < max_attempts and hmac.compare_digest(row.otp_hash, wanted):
                return row
        for row in candidates:  # a wrong guess costs every live code one attempt
            row.attempts += 1
        raise _Commit(errors.OtpExpired())

    # --- OAuth (social login through an upstream OpenID Connect provider) ---------------------
    def oauth_authorize_url(self, provider: str, *, redirect_to: str, code_challenge: str) -> str:
        if self.upstreams is None or not self.upstreams.is_configured(provider):
            raise OidcProviderDisabled(f"The provider {provider!r} is not enabled on this service.")
        query = urlencode(
            {
                "provider": provider,
                "redirect_to": redirect_to,
                "code_challenge": code_challenge,
                "code_challenge_method": "s256",
            }
        )
        return f"{self.issuer}/authorize?{query}"

    @property
    def upstream_callback_url(self) -> str:
        return f"{self.issuer}/callback"

    async def oauth_start(self, provider: str, *, redirect_to: str, code_challenge: str) -> str:
        """GET /auth/v1/authorize: remember the flow, send the browser upstream."""
        if self.upstreams is None or not self.upstreams.is_configured(provider):
            raise OidcProviderDisabled(f"The provider {provider!r} is not enabled on this service.")
        flow = LocalOAuthFlow(
            provider=provider,
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(24),
            upstream_verifier=secrets.token_urlsafe(48),
            code_challenge=code_challenge,
            redirect_to=redirect_to,
            expires_at=_now() + timedelta(seconds=OAUTH_FLOW_TTL_SECONDS),
        )
        async with self._tx() as repo:
            await repo.add_flow(flow)
        return await self.upstreams.authorization_url(
            provider,
            redirect_uri=self.upstream_callback_url,
            state=flow.state,
            nonce=flow.nonce,
            code_verifier=flow.upstream_verifier,
        )

    async def oauth_finish(self, *, state: str, code: str) -> str:
        """GET /auth/v1/callback: exchange upstream, link the user, redirect with our code."""
        if self.upstreams is None:
            raise OidcProviderDisabled()
        async with self._tx() as repo:
            flow = await repo.flow_by_state(state)
            if flow is None or flow.expires_at <= _now() or flow.auth_code_hash is not None:
                raise errors.InvalidOAuthCode()
            provider, nonce, verifier = flow.provider, flow.nonce, flow.upstream_verifier
        # Raises OidcError (400/503, a message safe to show) on any upstream failure.
        upstream = await self.upstreams.exchange(
            provider,
            code=code,
            redirect_uri=self.upstream_callback_url,
            code_verifier=verifier,
            nonce=nonce,
        )
        auth_code = secrets.token_urlsafe(32)
        async with self._tx() as repo:
            flow = await repo.flow_by_state(state)
            if flow is None or flow.auth_code_hash is not None:
                raise errors.InvalidOAuthCode()
            user = await self._user_for_upstream(repo, upstream)
            flow.user_id = user.id
            flow.auth_code_hash = _digest(auth_code)
            redirect_to = flow.redirect_to
        sep = "&" if "?" in redirect_to else "?"
        return f"{redirect_to}{sep}{urlencode({'code': auth_code})}"

    async def _user_for_upstream(
        self, repo: LocalIdentityRepository, upstream: OidcIdentity
    ) -> LocalUser:
        linked = await repo.identity(upstream.provider, upstream.subject)
        if linked is not None:
            user = await repo.user(linked.user_id)
            if user is not None:
                return user
        email = normalize_email(upstream.email) if upstream.email else None
        if not email:
            raise OidcError("The provider did not share an email address.")
        user = await repo.user_by_email(email)
        if user is not None and not upstream.email_verified:
            # Linking on an unverified address would hand the account to whoever typed it.
            raise OidcError("The provider has not verified this email address.")
        if user is None:
            user = await repo.add_user(
                LocalUser(
                    id=uuid.uuid4(),
                    email=email,
                    email_confirmed_at=_now() if upstream.email_verified else None,
                    app_metadata={"provider": upstream.provider, "providers": [upstream.provider]},
                )
            )
            if user is None:
                raise OidcError("Please try again.")
        else:
            providers = list((user.app_metadata or {}).get("providers", []))
            if upstream.provider not in providers:
                user.app_metadata = {
                    **user.app_metadata,
                    "providers": [*providers, upstream.provider],
                }
        await repo.add_identity(
            LocalIdentity(
                provider=upstream.provider,
                subject=upstream.subject,
                user_id=user.id,
                email=email,
                claims=dict(upstream.claims),
            )
        )
        return user

    async def exchange_code(
        self, auth_code: str, code_verifier: str, *, ctx: CallerContext
    ) -> IdentitySession:
        async with self._tx() as repo:
            flow = await repo.flow_by_code(_digest(auth_code))
            if flow is None or flow.user_id is None:
                raise errors.InvalidOAuthCode()  # GoTrue: flow_state_not_found
            user_id, challenge, expired = (
                flow.user_id,
                flow.code_challenge,
                flow.expires_at <= _now(),
            )
            await repo.delete_flow(flow)  # single use, even when the verifier is wrong
        expected = _b64(hashlib.sha256(code_verifier.encode("ascii", "replace")).digest())
        if expired or not hmac.compare_digest(expected, challenge):
            raise errors.InvalidOAuthCode()  # bad_code_verifier / flow_state_expired
        async with self._tx() as repo:
            user = await repo.user(user_id)
            if user is None:
                raise errors.InvalidOAuthCode()
            if _banned(user, _now()):
                raise errors.UserBanned()
            return await self._start_session(repo, user, "oauth")

    # --- MFA (TOTP) -------------------------------------------------------------------------
    async def mfa_enroll(
        self, access_token: str, *, friendly_name: str | None, ctx: CallerContext
    ) -> TotpEnrollment:
        secret = pyotp.random_base32()
        factor_id = uuid.uuid4()
        async with self._tx() as repo:
            auth = await self._authenticate(repo, access_token)
            await repo.add_factor(
                LocalMfaFactor(
                    id=factor_id,
                    user_id=auth.user.id,
                    friendly_name=friendly_name,
                    secret_encrypted=self._encryptor.encrypt(secret.encode(), str(factor_id)),
                )
            )
            email = auth.user.email
        issuer_name = self.base_url.split("://", 1)[-1]
        uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer_name)
        return TotpEnrollment(
            factor_id=str(factor_id),
            secret=secret,
            uri=uri,
            qr_code=segno.make(uri, error="m").svg_data_uri(),
        )

    @staticmethod
    def _uuid(value: str) -> uuid.UUID:
        try:
            return uuid.UUID(value)
        except ValueError:
            raise errors.MfaFactorNotFound() from None

    async def mfa_challenge(
        self, access_token: str, factor_id: str, *, ctx: CallerContext
    ) -> MfaChallenge:
        async with self._tx() as repo:
            auth = await self._authenticate(repo, access_token)
            factor = await repo.factor(self._uuid(factor_id), auth.user.id)
            if factor is None:
                raise errors.MfaFactorNotFound()
            expires = _now() + timedelta(seconds=self.settings.mfa_challenge_ttl_seconds)
            challenge = LocalMfaChallenge(id=uuid.uuid4(), factor_id=factor.id, expires_at=expires)
            await repo.add_challenge(challenge)
            return MfaChallenge(id=str(challenge.id), expires_at=int(expires.timestamp()))

    async def mfa_verify(
        self,
        access_token: str,
        factor_id: str,
        *,
        challenge_id: str,
        code: str,
        ctx: CallerContext,
    ) -> IdentitySession:
        async with self._tx() as repo:
            auth = await self._authenticate(repo, access_token)
            factor = await repo.factor(self._uuid(factor_id), auth.user.id)
            if factor is None:
                raise errors.MfaFactorNotFound()
            challenge = await repo.challenge(self._uuid(challenge_id), factor.id)
            if challenge is None:
                raise errors.MfaVerificationFailed()  # GoTrue: mfa_challenge_expired
            now = _now()
            if challenge.verified_at is not None or challenge.expires_at <= now:
                raise errors.MfaVerificationFailed()  # GoTrue: mfa_challenge_expired
            secret = self._encryptor.decrypt(factor.secret_encrypted, str(factor.id)).decode()
            counter = self._matching_step(secret, code, now)
            if counter is None or not await repo.use_code(factor.id, counter):
                raise errors.MfaVerificationFailed()
            challenge.verified_at = now
            factor.status = "verified"
            session = auth.session
            session.aal = "aal2"
            session.amr = [
                *(session.amr or []),
                {"method": "totp", "timestamp": int(now.timestamp())},
            ]
            await repo.session.flush()
            plain = await self._new_refresh(repo, session.id, None)
            return await self._issue(repo, auth.user, session, plain)

    @staticmethod
    def _matching_step(secret: str, code: str, now: datetime) -> int | None:
        """The time step (30 s) the code belongs to, one step of clock drift either way."""
        if not code.isdigit() or len(code) != 6:
            return None
        totp = pyotp.TOTP(secret)
        step = int(now.timestamp()) // totp.interval
        for candidate in (step, step - 1, step + 1):
            if hmac.compare_digest(totp.generate_otp(candidate), code):
                return candidate
        return None

    async def mfa_list_factors(self, access_token: str, *, ctx: CallerContext) -> list[MfaFactor]:
        async with self._tx() as repo:
            auth = await self._authenticate(repo, access_token)
            return [
                MfaFactor(
                    id=str(f.id),
                    factor_type=f.factor_type,
                    status=f.status,
                    friendly_name=f.friendly_name,
                    created_at=f.created_at,
                )
                for f in await repo.factors(auth.user.id)
            ]

    async def mfa_unenroll(self, access_token: str, factor_id: str, *, ctx: CallerContext) -> None:
        async with self._tx() as repo:
            auth = await self._authenticate(repo, access_token)
            factor = await repo.factor(self._uuid(factor_id), auth.user.id)
            if factor is None:
                raise errors.MfaFactorNotFound()
            if factor.status == "verified" and auth.session.aal != "aal2":
                raise errors.InsufficientAal()
            await repo.delete_factor(factor.id)

    async def has_verified_factor(self, user_id: uuid.UUID) -> bool:
        """For aal2-for-admins: does this user have a verified second factor?"""
        async with self._tx() as repo:
            return await repo.has_verified_factor(user_id)

    # --- admin ----------------------------------------------------------------------------------
    async def admin_get_user(self, user_id: uuid.UUID) -> IdentityUser | None:
        async with self._tx() as repo:
            user = await repo.user(user_id)
            return _identity_user(user) if user else None

    async def admin_create_user(
        self, email: str, password: str | None, *, confirmed: bool = True
    ) -> IdentityUser:
        """Raises UserAlreadyExists; the CLI's `users create`."""
        if password is not None:
            self._check_password(password)
        hashed = await self.hasher.hash(password) if password is not None else None
        async with self._tx() as repo:
            user = await repo.add_user(
                LocalUser(
                    id=uuid.uuid4(),
                    email=normalize_email(email),
                    encrypted_password=hashed,
                    email_confirmed_at=_now() if confirmed else None,
                    app_metadata={"provider": "email", "providers": ["email"]},
                )
            )
            if user is None:
                raise errors.UserAlreadyExists()
            return _identity_user(user)

    async def admin_ensure_user(self, email: str, password: str) -> uuid.UUID:
        async with self._tx() as repo:
            existing = await repo.user_by_email(normalize_email(email))
            if existing is not None:
                return existing.id
        try:
            return (await self.admin_create_user(email, password)).id
        except errors.UserAlreadyExists:
            async with self._tx() as repo:
                raced = await repo.user_by_email(normalize_email(email))
                if raced is None:
                    raise
                return raced.id

    async def admin_set_password(self, user_id: uuid.UUID, password: str) -> None:
        self._check_password(password)
        hashed = await self.hasher.hash(password)
        async with self._tx() as repo:
            user = await repo.user(user_id)
            if user is None:
                raise errors.SessionNotFound()
            user.encrypted_password = hashed
            await repo.delete_sessions(user.id)

    async def admin_ban_user(self, user_id: uuid.UUID, until: datetime | None) -> None:
        async with self._tx() as repo:
            user = await repo.user(user_id)
            if user is None:
                raise errors.SessionNotFound()  # GoTrue: user_not_found
            user.banned_until = until
            if until is not None:
                # Its sessions end: no refresh token of before the ban works after it is lifted.
                await repo.delete_sessions(user.id)

    async def admin_delete_user(self, user_id: uuid.UUID) -> None:
        async with self._tx() as repo:
            # Sessions, tokens, factors and identities cascade; profiles and roles follow
            # through the migration's trigger.
            await repo.delete_user(user_id)

    async def close(self) -> None:
        return None


class _Commit(Exception):
    """Raised inside a transaction whose writes must be kept (a failed attempt counted, a
    token family revoked) while the caller still gets `error`."""

    def __init__(self, error: AppError) -> None:
        super().__init__(error.code)
        self.error = error
