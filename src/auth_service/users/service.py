"""Human-user use cases: endpoint -> this service -> IdentityProvider / ProfileRepository.

Every path that first sees a user (register, login, verify, OAuth callback, MFA, refresh, /me)
makes sure the profile row exists, so users who signed up elsewhere get one lazily.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import jwt
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from auth_service import audit
from auth_service.audit import AuditAction, AuditEvent, Outcome, Target
from auth_service.core.actor import OPERATOR, Actor, ActorKind
from auth_service.core.db import UnitOfWork
from auth_service.core.errors import AppError, Conflict, NotFound, ServiceUnavailable
from auth_service.core.ratelimit import hashed
from auth_service.identity import errors as identity_errors
from auth_service.identity.errors import IdentityProviderNotConfigured
from auth_service.identity.port import (
    CallerContext,
    IdentityProvider,
    IdentitySession,
    IdentityUser,
    LogoutScope,
    MfaChallenge,
    MfaFactor,
    OtpType,
    ResendType,
    TotpEnrollment,
)
from auth_service.rbac.ceiling import PrivilegeCeilingGuard
from auth_service.revocation.service import RevocationStore
from auth_service.users.cutoffs import (
    cut_off_refresh_session,
    cut_off_user,
    remember_refresh_session,
)
from auth_service.users.models import Profile
from auth_service.users.repository import ProfileRepository

logger = logging.getLogger("auth_service.users")


class UsernameTaken(Conflict):
    code = "username_taken"
    message = "This username is already taken."


class RedirectNotAllowed(AppError):
    status_code = 400
    code = "redirect_not_allowed"
    message = "redirect_to is not in the allow-list."


class UserNotFound(NotFound):
    code = "user_not_found"
    message = "The user was not found."


class ProfileWriteFailed(ServiceUnavailable):
    code = "profile_write_failed"
    message = "The account could not be completed. Nothing was kept; please try again."


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated user, from a locally verified access token."""

    user_id: uuid.UUID
    access_token: str
    claims: Mapping[str, Any]

    @property
    def email(self) -> str | None:
        value = self.claims.get("email")
        return str(value) if value else None


@dataclass(frozen=True, slots=True)
class Registration:
    user: IdentityUser | None
    session: IdentitySession | None


@dataclass(frozen=True, slots=True)
class AdminUserView:
    user_id: uuid.UUID
    identity: IdentityUser | None
    profile: Profile | None
    roles: list[str]


def _session_id(access_token: str) -> str | None:
    """The `session_id` claim of a token the provider just issued (not a trust decision)."""
    try:
        claims = jwt.decode(access_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    value = claims.get("session_id")
    return value if isinstance(value, str) else None


def check_redirect(redirect_to: str | None, allow_list: list[str]) -> str | None:
    """`redirect_to` must share scheme and host with an allowed URL and sit under its path."""
    if redirect_to is None:
        return None
    target = urlsplit(redirect_to)
    if target.scheme in ("http", "https") and target.netloc and not target.username:
        for allowed in allow_list:
            entry = urlsplit(allowed)
            prefix = entry.path.rstrip("/")
            if (entry.scheme, entry.netloc.lower()) == (target.scheme, target.netloc.lower()) and (
                target.path == prefix or target.path.startswith(prefix + "/") or not prefix
            ):
                return redirect_to
    raise RedirectNotAllowed()


class UserService:
    def __init__(
        self,
        provider: IdentityProvider,
        profiles: ProfileRepository,
        revocations: RevocationStore,
        ctx: CallerContext,
        uow: UnitOfWork,
    ) -> None:
        self.provider = provider
        self.profiles = profiles
        self.revocations = revocations
        self.ctx = ctx
        self.uow = uow

    async def _seen(self, session: IdentitySession) -> IdentitySession:
        await self.profiles.get_or_create(session.user.id)
        session_id = _session_id(session.access_token)
        if session_id and session.refresh_token:
            await remember_refresh_session(self.revocations, session.refresh_token, session_id)
        return session

    async def _audit(
        self,
        action: AuditAction,
        user_id: uuid.UUID | str | None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """A success, in the request's transaction."""
        uid = str(user_id) if user_id else None
        event = AuditEvent(
            action, Actor(ActorKind.USER, uid), Target("user", uid), details=details or {}
        )
        await audit.record(self.profiles.session, event)

    @contextlib.asynccontextmanager
    async def _failure_audited(
        self, action: AuditAction, user_id: uuid.UUID | None = None, email: str | None = None
    ) -> AsyncIterator[None]:
        """A failure is recorded by the error handler in a transaction of its own."""
        try:
            yield
        except AppError as exc:
            if exc.audit_event is None:
                uid = str(user_id) if user_id else None
                details: dict[str, Any] = {"reason": exc.code}
                if email:
                    # Correlates attempts on one account without storing the address.
                    details["email_sha256"] = hashed(email)
                exc.audit_event = AuditEvent(
                    action, Actor(ActorKind.USER, uid), Target("user", uid), Outcome.FAILED, details
                )
            raise

    async def register(
        self,
        email: str,
        password: str,
        *,
        username: str | None,
        first_name: str | None,
        last_name: str | None,
        redirect_to: str | None,
    ) -> Registration:
        async with self._failure_audited(AuditAction.USER_REGISTER, email=email):
            result = await self.provider.sign_up(
                email, password, data={}, redirect_to=redirect_to, ctx=self.ctx
            )
        if result.obfuscated:
            # The email already has a pending account; answer exactly as for a new one.
            return Registration(user=None, session=None)
        try:
            await self.profiles.create(
                result.user.id, username=username, first_name=first_name, last_name=last_name
            )
            await self._audit(AuditAction.USER_REGISTER, result.user.id)
            # The Supabase account already exists: commit our half now, while a failure can
            # still be undone upstream, instead of after the response has been decided.
            await self.uow.commit()
        except (IntegrityError, SQLAlchemyError) as exc:
            # Undo the upstream account so nothing is half-done and a retry can succeed.
            await self._compensate(result.user.id)
            if isinstance(exc, IntegrityError):
                raise UsernameTaken() from None
            raise ProfileWriteFailed() from None
        if result.session is None:
            return Registration(user=None, session=None)
        return Registration(user=result.user, session=result.session)

    async def _compensate(self, user_id: uuid.UUID) -> None:
        try:
            await self.provider.admin_delete_user(user_id)
        except AppError:
            logger.error("registration rollback failed upstream", extra={"user_id": str(user_id)})

    async def login(self, email: str, password: str) -> IdentitySession:
        async with self._failure_audited(AuditAction.USER_LOGIN, email=email):
            session = await self.provider.sign_in_with_password(email, password, ctx=self.ctx)
        await self._audit(AuditAction.USER_LOGIN, session.user.id, {"method": "password"})
        return await self._seen(session)

    async def send_magic_link(
        self, email: str, *, create_user: bool, redirect_to: str | None
    ) -> None:
        try:
            await self.provider.send_magic_link(
                email, create_user=create_user, redirect_to=redirect_to, ctx=self.ctx
            )
        except identity_errors.OtpSignupsDisabled:
            return  # unknown email: the same answer as a known one

    async def verify(
        self, *, type: OtpType, email: str | None, token: str | None, token_hash: str | None
    ) -> IdentitySession:
        async with self._failure_audited(AuditAction.USER_LOGIN, email=email):
            session = await self.provider.verify_otp(
                type=type, email=email, token=token, token_hash=token_hash, ctx=self.ctx
            )
        await self._audit(AuditAction.USER_LOGIN, session.user.id, {"method": f"otp:{type}"})
        return await self._seen(session)

    async def resend(self, *, type: ResendType, email: str, redirect_to: str | None) -> None:
        await self.provider.resend(type=type, email=email, redirect_to=redirect_to, ctx=self.ctx)

    async def refresh(self, refresh_token: str) -> IdentitySession:
        try:
            session = await self.provider.refresh(refresh_token, ctx=self.ctx)
        except identity_errors.RefreshTokenReused:
            # Upstream revoked the session; its access tokens stop working here at once.
            await cut_off_refresh_session(self.revocations, refresh_token)
            raise
        return await self._seen(session)

    async def logout(self, caller: Caller, scope: LogoutScope) -> None:
        """Deny the token's session (or every session) locally until exp, then revoke upstream.

        Local first: even if Supabase is down, the token stops working with us at once.
        """
        now = time.time()
        exp = int(caller.claims.get("exp", now))
        ttl = max(1, exp - int(now))
        session_id = caller.claims.get("session_id")
        if scope == "others":
            await self._cut_off(caller, now, keep_current=True)
        elif session_id:
            await self.revocations.revoke_session(str(session_id), ttl=ttl)
        if scope == "global":
            await self._cut_off(caller, now)
        await self._audit(AuditAction.USER_LOGOUT, caller.user_id, {"scope": scope})
        with contextlib.suppress(identity_errors.SessionNotFound):  # already gone upstream
            await self.provider.sign_out(caller.access_token, scope=scope, ctx=self.ctx)

    async def reset_password(self, email: str, redirect_to: str | None) -> None:
        async with self._failure_audited(AuditAction.USER_PASSWORD_RESET, email=email):
            await self.provider.reset_password(email, redirect_to=redirect_to, ctx=self.ctx)
        # No user id: whether the email exists stays unknown, in the log too.
        await self._audit(AuditAction.USER_PASSWORD_RESET, None, {"email_sha256": hashed(email)})

    async def _cut_off(self, caller: Caller, now: float, *, keep_current: bool = False) -> None:
        """Refuse every token of the user issued up to now (optionally sparing this session)."""
        exp = int(caller.claims.get("exp", now))
        # Keep the mark as long as any token issued before now can live.
        lifetime = max(1, exp - int(now), exp - int(caller.claims.get("iat", now)))
        session_id = caller.claims.get("session_id")
        await self.revocations.revoke_user(
            caller.user_id,
            cutoff=now,
            ttl=lifetime,
            keep_session=str(session_id) if keep_current and session_id else None,
        )

    async def update_password(self, caller: Caller, password: str) -> None:
        async with self._failure_audited(AuditAction.USER_PASSWORD_UPDATE, caller.user_id):
            await self.provider.update_password(caller.access_token, password, ctx=self.ctx)
        await self._audit(AuditAction.USER_PASSWORD_UPDATE, caller.user_id)
        # Supabase signs the user's other sessions out; make their access tokens stop too.
        await self._cut_off(caller, time.time(), keep_current=True)

    async def me(self, caller: Caller) -> Profile:
        return await self.profiles.get_or_create(caller.user_id)

    async def update_me(self, caller: Caller, fields: dict[str, Any]) -> Profile:
        await self.profiles.get_or_create(caller.user_id)
        username = fields.get("username")
        if username and await self.profiles.username_taken(username, except_user=caller.user_id):
            raise UsernameTaken()
        try:
            profile = await self.profiles.update(caller.user_id, **fields)
        except IntegrityError:
            raise UsernameTaken() from None  # lost a race for the same username
        assert profile is not None  # noqa: S101 - created above in this transaction
        return profile

    def oauth_authorize_url(self, provider: str, *, redirect_to: str, code_challenge: str) -> str:
        return self.provider.oauth_authorize_url(
            provider, redirect_to=redirect_to, code_challenge=code_challenge
        )

    async def oauth_callback(self, auth_code: str, code_verifier: str) -> IdentitySession:
        async with self._failure_audited(AuditAction.USER_LOGIN):
            session = await self.provider.exchange_code(auth_code, code_verifier, ctx=self.ctx)
        await self._audit(AuditAction.USER_LOGIN, session.user.id, {"method": "oauth"})
        return await self._seen(session)

    async def mfa_enroll(self, caller: Caller, friendly_name: str | None) -> TotpEnrollment:
        async with self._failure_audited(AuditAction.USER_MFA_ENROLL, caller.user_id):
            enrollment = await self.provider.mfa_enroll(
                caller.access_token, friendly_name=friendly_name, ctx=self.ctx
            )
        await self._audit(
            AuditAction.USER_MFA_ENROLL, caller.user_id, {"factor": enrollment.factor_id}
        )
        return enrollment

    async def mfa_challenge(self, caller: Caller, factor_id: str) -> MfaChallenge:
        return await self.provider.mfa_challenge(caller.access_token, factor_id, ctx=self.ctx)

    async def mfa_verify(
        self, caller: Caller, factor_id: str, challenge_id: str, code: str
    ) -> IdentitySession:
        async with self._failure_audited(AuditAction.USER_MFA_VERIFY, caller.user_id):
            session = await self.provider.mfa_verify(
                caller.access_token, factor_id, challenge_id=challenge_id, code=code, ctx=self.ctx
            )
        await self._audit(AuditAction.USER_MFA_VERIFY, caller.user_id, {"factor": factor_id})
        return await self._seen(session)

    async def mfa_factors(self, caller: Caller) -> list[MfaFactor]:
        return await self.provider.mfa_list_factors(caller.access_token, ctx=self.ctx)

    async def mfa_unenroll(self, caller: Caller, factor_id: str) -> None:
        async with self._failure_audited(AuditAction.USER_MFA_UNENROLL, caller.user_id):
            await self.provider.mfa_unenroll(caller.access_token, factor_id, ctx=self.ctx)
        await self._audit(AuditAction.USER_MFA_UNENROLL, caller.user_id, {"factor": factor_id})


class AdminUserService:
    def __init__(
        self,
        provider: IdentityProvider | None,
        profiles: ProfileRepository,
        revocations: RevocationStore | None = None,
        *,
        actor: Actor = OPERATOR,
    ) -> None:
        self.provider = provider
        self.profiles = profiles
        self.revocations = revocations
        self.actor = actor
        self.ceiling = PrivilegeCeilingGuard(profiles.session, actor)

    async def get(self, user_id: uuid.UUID) -> AdminUserView:
        identity = await self.provider.admin_get_user(user_id) if self.provider else None
        profile = await self.profiles.get(user_id)
        if identity is None and profile is None:
            raise UserNotFound()
        return AdminUserView(
            user_id=user_id,
            identity=identity,
            profile=profile,
            roles=await self.profiles.role_names(user_id),
        )

    async def _usable(self, user_id: uuid.UUID) -> bool:
        """Can this user still sign in (exists upstream and is not banned)?"""
        if self.provider is None:
            return True
        identity = await self.provider.admin_get_user(user_id)
        return identity is not None and not identity.banned(datetime.now(UTC))

    async def _keep_an_admin_without(self, user_id: uuid.UUID) -> None:
        """409 `last_admin` when the user is the last admin who can still sign in."""
        await self.ceiling.keep_an_admin_without(
            await self.ceiling.holder_roles_of_user(user_id), user_id=user_id, usable=self._usable
        )

    async def delete(self, user_id: uuid.UUID) -> None:
        """Our rows first (rolled back if the upstream delete fails), then the Supabase user.

        The user's outstanding access tokens are cut off at once."""
        await self.ceiling.check_user(user_id, AuditAction.USER_DELETE)
        await self._keep_an_admin_without(user_id)
        had_profile = await self.profiles.delete(user_id)
        await self.profiles.delete_role_assignments(user_id)
        if self.provider is None:
            if not had_profile:
                raise UserNotFound()
            await self._deleted(user_id)
            return
        if not had_profile and await self.provider.admin_get_user(user_id) is None:
            raise UserNotFound()
        await self._deleted(user_id)
        await self.provider.admin_delete_user(user_id)

    async def ban(self, user_id: uuid.UUID, until: datetime | None) -> AdminUserView:
        """Ban the user until `until` (None lifts the ban), as GoTrue's `ban_duration`.

        Bounded like a delete (privilege ceiling; the last admin who can sign in stays). A ban
        cuts off the user's outstanding access tokens at once; lifting it revives none."""
        action = AuditAction.USER_UNBAN if until is None else AuditAction.USER_BAN
        await self.ceiling.check_user(user_id, action)
        if self.provider is None:
            raise IdentityProviderNotConfigured()
        if until is not None:
            await self._keep_an_admin_without(user_id)
        if await self.provider.admin_get_user(user_id) is None:
            raise UserNotFound()
        details = {"banned_until": until.isoformat()} if until is not None else {}
        await audit.record(
            self.profiles.session,
            AuditEvent(action, self.actor, Target("user", str(user_id)), details=details),
        )
        if until is not None and self.revocations is not None:
            # Before the upstream call: if that fails, the tokens are refused all the same.
            await cut_off_user(self.revocations, user_id)
        await self.provider.admin_ban_user(user_id, until)
        return await self.get(user_id)

    async def _deleted(self, user_id: uuid.UUID) -> None:
        target = Target("user", str(user_id))
        await audit.record(
            self.profiles.session, AuditEvent(AuditAction.USER_DELETE, self.actor, target)
        )
        if self.revocations is not None:
            await cut_off_user(self.revocations, user_id)
