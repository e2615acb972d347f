"""App-client admin API under /auth/admin/clients.

Each route declares its permission (`clients:read` or `clients:write`), checked against the
database on every call. Secrets appear in a response exactly once: at creation and rotation.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status

from auth_service.clients.schemas import (
    ClientCreate,
    ClientCreated,
    ClientKeys,
    ClientPage,
    ClientRead,
    ClientUpdate,
    RoleRef,
    SecretRotated,
)
from auth_service.clients.service import ClientService, ClientView
from auth_service.core.db import DbSession
from auth_service.core.pagination import Limit, Offset
from auth_service.core.ratelimit import DefaultRateLimit
from auth_service.rbac.authorization import (
    CurrentPrincipal,
    Principal,
    permission_doc,
    require_permission,
)

router = APIRouter(prefix="/auth/admin/clients", tags=["clients"], dependencies=[DefaultRateLimit])


def get_client_service(
    request: Request, session: DbSession, principal: CurrentPrincipal
) -> ClientService:
    return ClientService(session, request.app.state.settings, actor=principal.actor)


Clients = Annotated[ClientService, Depends(get_client_service)]
ClientsReader = Annotated[Principal, Depends(require_permission("clients:read"))]
ClientsWriter = Annotated[Principal, Depends(require_permission("clients:write"))]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, invalid, expired or revoked bearer token."},
    403: {
        "description": "`insufficient_permissions`: the caller lacks the required permission."
        " `privilege_ceiling`: the client (or role) holds permissions or roles the caller does"
        " not; `details` names them (see docs/rbac.md). `mfa_required`: a human admin must"
        " step up to aal2 first."
    },
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown client or role."}}
_CONFLICTS = {
    "client_name_taken": "the name is taken",
    "last_admin": "the client is the last active holder of the admin role",
    "client_has_no_secret": "a private_key_jwt client has no secret to rotate",
    "client_has_no_keys": "a client that authenticates with a secret takes no keys",
}


def _conflict(*codes: str) -> dict[int | str, dict[str, Any]]:
    """The 409 of a route, naming exactly the conflicts it can raise."""
    text = " ".join(f"`{code}`: {_CONFLICTS[code]}." for code in codes)
    return {409: {"description": text}}


def client_read(view: ClientView) -> ClientRead:
    """The API's view of a client (the operator CLI prints the same)."""
    return ClientRead(**_fields(view))


def _pending(grace_until: datetime | None) -> datetime | None:
    """Only a grace period still running is worth showing."""
    return grace_until if grace_until and grace_until > datetime.now(UTC) else None


def _fields(view: ClientView) -> dict[str, Any]:
    client = view.client
    return {
        "client_id": client.id,
        "name": client.client_name,
        "description": client.description,
        "allowed_audiences": list(client.allowed_audiences),
        "is_active": client.is_active,
        "roles": [RoleRef(id=r.id, name=r.name) for r in view.roles],
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "jwks": client.jwks,
        "jwks_uri": client.jwks_uri,
        "dpop_bound_access_tokens": client.dpop_bound_access_tokens,
        "secret_rotation_grace_until": _pending(client.previous_secret_expires_at),
        "created_at": client.created_at,
        "updated_at": client.updated_at,
    }


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ClientCreated,
    responses={**_ERRORS, **_conflict("client_name_taken")},
    summary="Create a client (the secret is shown only in this response)",
    **permission_doc("clients:write"),
)
async def create_client(
    body: ClientCreate, service: Clients, _: ClientsWriter, response: Response
) -> ClientCreated:
    view, secret = await service.create(
        name=body.name,
        description=body.description,
        allowed_audiences=body.allowed_audiences,
        is_active=body.is_active,
        token_endpoint_auth_method=body.token_endpoint_auth_method,
        jwks=body.jwks,
        jwks_uri=body.jwks_uri,
        dpop_bound_access_tokens=body.dpop_bound_access_tokens,
    )
    response.headers["Cache-Control"] = "no-store"
    return ClientCreated(**_fields(view), client_secret=secret)


@router.get(
    "",
    response_model=ClientPage,
    responses=_ERRORS,
    summary="List clients",
    **permission_doc("clients:read"),
)
async def list_clients(
    service: Clients, _: ClientsReader, limit: Limit = 50, offset: Offset = 0
) -> ClientPage:
    views, total = await service.page(limit=limit, offset=offset)
    return ClientPage(
        items=[client_read(v) for v in views], total=total, limit=limit, offset=offset
    )


@router.get(
    "/{client_id}",
    response_model=ClientRead,
    responses={**_ERRORS, **_NOT_FOUND},
    summary="Read a client",
    **permission_doc("clients:read"),
)
async def get_client(client_id: uuid.UUID, service: Clients, _: ClientsReader) -> ClientRead:
    return client_read(await service.get(client_id))


@router.put(
    "/{client_id}",
    response_model=ClientRead,
    responses={**_ERRORS, **_NOT_FOUND, **_conflict("client_name_taken", "last_admin")},
    summary="Replace a client's name, description, audiences and active flag",
    **permission_doc("clients:write"),
)
async def update_client(
    client_id: uuid.UUID, body: ClientUpdate, service: Clients, _: ClientsWriter
) -> ClientRead:
    view = await service.update(
        client_id,
        name=body.name,
        description=body.description,
        allowed_audiences=body.allowed_audiences,
        is_active=body.is_active,
    )
    return client_read(view)


@router.delete(
    "/{client_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_ERRORS, **_NOT_FOUND, **_conflict("last_admin")},
    summary="Delete a client; its tokens stop working at once",
    **permission_doc("clients:write"),
)
async def delete_client(client_id: uuid.UUID, service: Clients, _: ClientsWriter) -> Response:
    await service.delete(client_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{client_id}/secret",
    response_model=SecretRotated,
    responses={**_ERRORS, **_NOT_FOUND, **_conflict("client_has_no_secret")},
    summary="Rotate the secret; the previous one works until the grace period ends",
    **permission_doc("clients:write"),
)
async def rotate_secret(
    client_id: uuid.UUID, service: Clients, _: ClientsWriter, response: Response
) -> SecretRotated:
    secret, expires = await service.rotate_secret(client_id)
    response.headers["Cache-Control"] = "no-store"
    return SecretRotated(
        client_id=client_id, client_secret=secret, previous_secret_expires_at=expires
    )


@router.put(
    "/{client_id}/keys",
    response_model=ClientRead,
    responses={**_ERRORS, **_NOT_FOUND, **_conflict("client_has_no_keys")},
    summary="Replace a private_key_jwt client's public keys (jwks or jwks_uri)",
    **permission_doc("clients:write"),
)
async def set_client_keys(
    client_id: uuid.UUID, body: ClientKeys, service: Clients, _: ClientsWriter
) -> ClientRead:
    view = await service.set_keys(
        client_id,
        jwks=body.jwks,
        jwks_uri=body.jwks_uri,
        dpop_bound_access_tokens=body.dpop_bound_access_tokens,
    )
    return client_read(view)


@router.post(
    "/{client_id}/roles/{role_id}",
    response_model=ClientRead,
    responses={**_ERRORS, **_NOT_FOUND},
    summary="Assign a role (idempotent)",
    **permission_doc("clients:write"),
)
async def assign_role(
    client_id: uuid.UUID, role_id: uuid.UUID, service: Clients, _: ClientsWriter
) -> ClientRead:
    return client_read(await service.assign_role(client_id, role_id))


@router.delete(
    "/{client_id}/roles/{role_id}",
    response_model=ClientRead,
    responses={
        **_ERRORS,
        404: {
            "description": "Unknown client (`client_not_found`) or role (`role_not_found`),"
            " or the client does not hold the role (`assignment_not_found`)."
        },
        **_conflict("last_admin"),
    },
    summary="Remove a role; 404 assignment_not_found when the client does not hold it",
    **permission_doc("clients:write"),
)
async def remove_role(
    client_id: uuid.UUID, role_id: uuid.UUID, service: Clients, _: ClientsWriter
) -> ClientRead:
    return client_read(await service.remove_role(client_id, role_id))
