"""App-client management: create, update, delete, rotate secrets, assign roles."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service import audit
from auth_service.audit import AuditAction, AuditEvent, Target
from auth_service.clients.keys import (
    AUTH_METHODS,
    client_secret_encryptor,
    secret_aad,
    validate_jwks_uri,
    validate_public_jwks,
)
from auth_service.clients.models import AppClient
from auth_service.clients.repository import ClientRepository
from auth_service.clients.secrets import SecretHasher, generate_secret
from auth_service.config import Settings
from auth_service.core.actor import OPERATOR, Actor
from auth_service.core.errors import Conflict, NotFound, ValidationFailed
from auth_service.rbac.ceiling import PrivilegeCeilingGuard
from auth_service.rbac.models import Role


class ClientNotFound(NotFound):
    code = "client_not_found"
    message = "The client was not found."


class RoleNotFound(NotFound):
    code = "role_not_found"
    message = "The role was not found."


class ClientRoleNotAssigned(NotFound):
    # The same code as every other removal of something not assigned (rbac).
    code = "assignment_not_found"
    message = "The client does not hold that role."


class ClientNameTaken(Conflict):
    code = "client_name_taken"
    message = "A client with this name already exists."


class ClientHasNoSecret(Conflict):
    code = "client_has_no_secret"
    message = "This client authenticates with keys (private_key_jwt); it has no secret."


class ClientHasNoKeys(Conflict):
    code = "client_has_no_keys"
    message = "This client authenticates with a secret; it takes no jwks or jwks_uri."


@dataclass(slots=True)
class ClientView:
    client: AppClient
    roles: list[Role] = field(default_factory=list)


def _now() -> datetime:
    return datetime.now(UTC)


def _target(client_id: uuid.UUID) -> Target:
    return Target("client", str(client_id))


class ClientService:
    """`actor` is who calls: endpoints pass the principal's actor (bounded by the privilege
    ceiling); operator commands keep the default, `OPERATOR` (unbounded, still audited)."""

    def __init__(
        self, session: AsyncSession, settings: Settings, *, actor: Actor = OPERATOR
    ) -> None:
        self.actor = actor
        self.ceiling = PrivilegeCeilingGuard(session, actor)
        self.repo = ClientRepository(session)
        self.session = session
        self.hasher = SecretHasher(settings.client_secret_pepper.get_secret_value())
        self.grace = timedelta(seconds=settings.client_secret_rotation_grace_seconds)
        self.encryptor = client_secret_encryptor(
            settings.signing_key_encryption_key.get_secret_value()
        )
        self.production = settings.is_production

    async def create(
        self,
        *,
        name: str,
        description: str | None = None,
        allowed_audiences: Sequence[str] = (),
        is_active: bool = True,
        role_names: Sequence[str] = (),
        secret: str | None = None,
        token_endpoint_auth_method: str = "client_secret_basic",  # noqa: S107 - a method name
        jwks: dict[str, Any] | None = None,
        jwks_uri: str | None = None,
        dpop_bound_access_tokens: bool = False,
    ) -> tuple[ClientView, str | None]:
        """Create a client; returns it with the plain secret (None for key-only clients).

        The secret is stored as a digest only, except for client_secret_jwt, whose HMAC check
        needs the raw secret: it is also kept AES-GCM encrypted (docs/client-secrets.md).
        """
        method = token_endpoint_auth_method
        if method not in AUTH_METHODS:
            raise ValidationFailed(
                "Unknown token_endpoint_auth_method.", code="invalid_auth_method"
            )
        keys, uri = self._keys(method, jwks, jwks_uri)
        if await self.repo.name_taken(name):
            raise ClientNameTaken()
        roles = await self._roles_named(role_names)
        await self.ceiling.check_roles(
            {r.id: r.name for r in roles}, AuditAction.CLIENT_CREATE, Target("client")
        )
        client_id = uuid.uuid4()
        client = AppClient(
            id=client_id,
            client_name=name,
            description=description,
            allowed_audiences=_unique(allowed_audiences),
            is_active=is_active,
            token_endpoint_auth_method=method,
            jwks=keys,
            jwks_uri=uri,
            dpop_bound_access_tokens=dpop_bound_access_tokens,
        )
        plain: str | None = None
        if method != "private_key_jwt":
            plain = secret if secret is not None else generate_secret()
            client.client_secret_hash = self.hasher.hash(plain)
            if method == "client_secret_jwt":
                client.client_secret_encrypted = self._encrypt(plain, client_id)
        try:
            # A savepoint, so a concurrent insert of the same name is a 409, not a 500.
            async with self.session.begin_nested():
                await self.repo.add(client)
        except IntegrityError as exc:
            raise ClientNameTaken() from exc
        for role in roles:
            await self.repo.add_role(client.id, role.id)
        await self._audit(
            AuditAction.CLIENT_CREATE, client.id, {"name": name, "roles": [r.name for r in roles]}
        )
        return ClientView(client, sorted(roles, key=lambda r: r.name)), plain

    async def id_for(self, ref: str) -> uuid.UUID:
        """A client addressed by id or by name (operators type names)."""
        try:
            client_id: uuid.UUID | None = uuid.UUID(ref)
        except ValueError:
            client_id = await self.repo.id_by_name(ref)
        if client_id is None:
            raise ClientNotFound(f"No client named {ref!r}.")
        return client_id

    async def get(self, client_id: uuid.UUID) -> ClientView:
        client = await self._client(client_id)
        roles = await self.repo.roles_of([client.id])
        return ClientView(client, roles[client.id])

    async def page(self, *, limit: int, offset: int) -> tuple[list[ClientView], int]:
        clients, total = await self.repo.page(limit=limit, offset=offset)
        roles = await self.repo.roles_of(c.id for c in clients)
        return [ClientView(c, roles[c.id]) for c in clients], total

    async def update(
        self,
        client_id: uuid.UUID,
        *,
        name: str,
        description: str | None,
        allowed_audiences: Sequence[str],
        is_active: bool,
    ) -> ClientView:
        client = await self._client(client_id)
        await self.ceiling.check_client(client.id, AuditAction.CLIENT_UPDATE)
        if client.is_active and not is_active:
            await self.ceiling.keep_an_admin_without(
                await self.ceiling.holder_roles_of_client(client.id)
            )
        if name != client.client_name and await self.repo.name_taken(name, exclude=client.id):
            raise ClientNameTaken()
        client.client_name = name
        client.description = description
        client.allowed_audiences = _unique(allowed_audiences)
        client.is_active = is_active
        try:
            async with self.session.begin_nested():
                await self.repo.save(client)
        except IntegrityError as exc:
            raise ClientNameTaken() from exc
        await self._audit(AuditAction.CLIENT_UPDATE, client.id, {"is_active": is_active})
        return await self.get(client.id)

    async def delete(self, client_id: uuid.UUID) -> None:
        client = await self._client(client_id)
        await self.ceiling.check_client(client.id, AuditAction.CLIENT_DELETE)
        if client.is_active:
            await self.ceiling.keep_an_admin_without(
                await self.ceiling.holder_roles_of_client(client.id)
            )
        if not await self.repo.delete(client_id):
            raise ClientNotFound()
        await self._audit(AuditAction.CLIENT_DELETE, client_id)

    async def rotate_secret(
        self, client_id: uuid.UUID, *, secret: str | None = None
    ) -> tuple[str, datetime]:
        """New secret now; the current one keeps working for the grace period.

        The row is locked first, so concurrent rotations serialise: each one demotes the secret
        the previous rotation returned, and no 200 hands out a secret that was overwritten.
        """
        client = await self.repo.get_for_update(client_id)
        if client is None:
            raise ClientNotFound()
        if client.client_secret_hash is None:
            raise ClientHasNoSecret()
        await self.ceiling.check_client(client.id, AuditAction.CLIENT_SECRET_ROTATE)
        plain = secret if secret is not None else generate_secret()
        expires = _now() + self.grace
        client.previous_secret_hash = client.client_secret_hash
        client.previous_secret_expires_at = expires
        client.client_secret_hash = self.hasher.hash(plain)
        if client.token_endpoint_auth_method == "client_secret_jwt":  # noqa: S105 - a method
            client.previous_secret_encrypted = client.client_secret_encrypted
            client.client_secret_encrypted = self._encrypt(plain, client.id)
        await self.repo.save(client)
        await self._audit(AuditAction.CLIENT_SECRET_ROTATE, client.id)
        return plain, expires

    async def assign_role(self, client_id: uuid.UUID, role_id: uuid.UUID) -> ClientView:
        await self._client(client_id)
        role = await self.repo.role(role_id)
        if role is None:
            raise RoleNotFound()
        action = AuditAction.CLIENT_ROLE_ASSIGN
        await self.ceiling.check_client(client_id, action)
        await self.ceiling.check_roles({role.id: role.name}, action, _target(client_id))
        await self.repo.add_role(client_id, role_id)
        await self._audit(action, client_id, {"role": role.name})
        return await self.get(client_id)

    async def remove_role(self, client_id: uuid.UUID, role_id: uuid.UUID) -> ClientView:
        """Removing a role the client does not hold is 404, like every other removal."""
        client = await self._client(client_id)
        role = await self.repo.role(role_id)
        if role is None:
            raise RoleNotFound()
        action = AuditAction.CLIENT_ROLE_REMOVE
        await self.ceiling.check_client(client_id, action)
        await self.ceiling.check_roles({role.id: role.name}, action, _target(client_id))
        holds = role.id in await self.ceiling.holder_roles_of_client(client_id)
        if not holds:
            raise ClientRoleNotAssigned()
        if client.is_active:
            await self.ceiling.keep_an_admin(role.id, role.name)
        await self.repo.remove_role(client_id, role_id)
        await self._audit(action, client_id, {"role": role.name})
        return await self.get(client_id)

    async def set_keys(
        self,
        client_id: uuid.UUID,
        *,
        jwks: dict[str, Any] | None,
        jwks_uri: str | None,
        dpop_bound_access_tokens: bool | None = None,
    ) -> ClientView:
        """Replace a private_key_jwt client's keys (key rotation without a new client).

        Neither `jwks` nor `jwks_uri`: the keys stay as they are (only the DPoP flag changes).
        """
        client = await self._client(client_id)
        await self.ceiling.check_client(client.id, AuditAction.CLIENT_UPDATE)
        replacing = jwks is not None or jwks_uri is not None
        if replacing and client.token_endpoint_auth_method != "private_key_jwt":  # noqa: S105
            raise ClientHasNoKeys()
        if replacing:
            keys, uri = self._keys(client.token_endpoint_auth_method, jwks, jwks_uri)
            client.jwks, client.jwks_uri = keys, uri
        if dpop_bound_access_tokens is not None:
            client.dpop_bound_access_tokens = dpop_bound_access_tokens
        await self.repo.save(client)
        details: dict[str, object] = {"keys": "replaced" if replacing else "unchanged"}
        await self._audit(AuditAction.CLIENT_UPDATE, client.id, details)
        return await self.get(client.id)

    def _keys(
        self, method: str, jwks: dict[str, Any] | None, jwks_uri: str | None
    ) -> tuple[dict[str, Any] | None, str | None]:
        if method != "private_key_jwt":
            if jwks is not None or jwks_uri is not None:
                raise ValidationFailed(
                    "jwks and jwks_uri are only for private_key_jwt clients.",
                    code="invalid_client_keys",
                )
            return None, None
        if (jwks is None) == (jwks_uri is None):
            raise ValidationFailed(
                "A private_key_jwt client needs exactly one of jwks or jwks_uri.",
                code="invalid_client_keys",
            )
        if jwks is not None:
            return validate_public_jwks(jwks), None
        return None, validate_jwks_uri(str(jwks_uri), production=self.production)

    def _encrypt(self, plain: str, client_id: uuid.UUID) -> str:
        return self.encryptor.encrypt(plain.encode(), secret_aad(client_id))

    async def _audit(
        self, action: AuditAction, client_id: uuid.UUID, details: dict[str, object] | None = None
    ) -> None:
        event = AuditEvent(action, self.actor, _target(client_id), details=details or {})
        await audit.record(self.session, event)

    async def _client(self, client_id: uuid.UUID) -> AppClient:
        client = await self.repo.get(client_id)
        if client is None:
            raise ClientNotFound()
        return client

    async def _roles_named(self, names: Sequence[str]) -> list[Role]:
        wanted = _unique(names)
        found = await self.repo.roles_named(wanted)
        missing = [n for n in wanted if n not in found]
        if missing:
            raise ValidationFailed("Unknown role.", code="unknown_role", details={"roles": missing})
        return [found[n] for n in wanted]


def _unique(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))
