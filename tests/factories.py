"""Small data factories shared by the domain tests (add yours here, one function each)."""


# --- machine clients (oauth2/clients helper) -------------------------------------------------

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from auth_service.clients.service import ClientService
from tests.support.gotrue import ANON_KEY, SERVICE_ROLE_KEY, GoTrueStandIn, ServedStandIn


async def create_client(
    app: FastAPI,
    *,
    name: str | None = None,
    roles: Sequence[str] = ("admin",),
    audiences: Sequence[str] | None = None,
    secret: str | None = None,
    is_active: bool = True,
) -> tuple[uuid.UUID, str]:
    """An app client made through the service layer, with roles by name: (client_id, secret)."""
    client_id, plain = await create_keyed_client(
        app, name=name, roles=roles, audiences=audiences, secret=secret, is_active=is_active
    )
    assert plain is not None
    return client_id, plain


async def create_keyed_client(
    app: FastAPI,
    *,
    name: str | None = None,
    roles: Sequence[str] = ("admin",),
    audiences: Sequence[str] | None = None,
    secret: str | None = None,
    is_active: bool = True,
    method: str = "client_secret_basic",
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
    dpop: bool = False,
) -> tuple[uuid.UUID, str | None]:
    """A client with any token_endpoint_auth_method: (client_id, secret or None)."""
    async with app.state.session_factory.begin() as session:
        view, plain = await ClientService(session, app.state.settings).create(
            name=name or f"client-{uuid.uuid4().hex[:10]}",
            role_names=roles,
            allowed_audiences=audiences or (),
            secret=secret,
            is_active=is_active,
            token_endpoint_auth_method=method,
            jwks=jwks,
            jwks_uri=jwks_uri,
            dpop_bound_access_tokens=dpop,
        )
    return view.client.id, plain


async def client_token(
    client: httpx.AsyncClient,
    client_id: uuid.UUID | str,
    secret: str,
    scope: str | None = None,
) -> str:
    """An access token from POST /auth/token (client_secret_post)."""
    data = {
        "grant_type": "client_credentials",
        "client_id": str(client_id),
        "client_secret": secret,
    }
    if scope is not None:
        data["scope"] = scope
    response = await client.post("/auth/token", data=data)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def admin_headers(
    app: FastAPI, client: httpx.AsyncClient, roles: Sequence[str] = ("admin",)
) -> dict[str, str]:
    """Bearer headers of a fresh client holding `roles`."""
    client_id, secret = await create_client(app, roles=roles)
    return {"Authorization": f"Bearer {await client_token(client, client_id, secret)}"}


# --- human users (users/identity helper) -----------------------------------------------------

USER_PASSWORD = "Correct-horse-1"


@pytest.fixture(scope="session")
def gotrue_server() -> Iterator[GoTrueStandIn]:
    """The GoTrue stand-in, served over HTTP on loopback for the whole session."""
    with ServedStandIn(GoTrueStandIn()) as standin:
        yield standin


@pytest.fixture
def gotrue(gotrue_server: GoTrueStandIn) -> GoTrueStandIn:
    """The stand-in with empty state for this test."""
    gotrue_server.reset()
    return gotrue_server


def supabase_overrides(gotrue: GoTrueStandIn, **extra: Any) -> dict[str, Any]:
    """Settings that point the service at the stand-in (pass to make_settings)."""
    values: dict[str, Any] = {
        "supabase_url": gotrue.base_url,
        "supabase_anon_key": ANON_KEY,
        "supabase_service_role_key": SERVICE_ROLE_KEY,
        "supabase_timeout_seconds": 2.0,
        "oauth_redirect_allow_list": ["https://app.example.com/auth"],
    }
    values.update(extra)
    return values


async def register_user(
    client: httpx.AsyncClient,
    email: str | None = None,
    password: str = USER_PASSWORD,
    **fields: Any,
) -> dict[str, Any]:
    """POST /auth/users/register (autoconfirm on in the stand-in): the JSON body."""
    email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
    response = await client.post(
        "/auth/users/register", json={"email": email, "password": password, **fields}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login_user(
    client: httpx.AsyncClient, email: str, password: str = USER_PASSWORD
) -> dict[str, Any]:
    """POST /auth/users/login: the session JSON."""
    response = await client.post("/auth/users/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- rbac (roles, permissions, assignments helper) --------------------------------------------

from sqlalchemy import select  # noqa: E402

from auth_service.rbac.models import Permission, Role, RolePermission, UserRole  # noqa: E402
from auth_service.users.models import Profile  # noqa: E402


async def create_permission(app: FastAPI, name: str, description: str | None = None) -> uuid.UUID:
    """A permission row, committed; its id."""
    async with app.state.session_factory.begin() as session:
        permission = Permission(name=name, description=description)
        session.add(permission)
        await session.flush()
        return permission.id


async def create_role(
    app: FastAPI, name: str | None = None, permissions: Sequence[str] = ()
) -> uuid.UUID:
    """A role holding `permissions` (by name, created when missing), committed; its id."""
    async with app.state.session_factory.begin() as session:
        role = Role(name=name or f"role-{uuid.uuid4().hex[:10]}")
        session.add(role)
        await session.flush()
        for perm_name in permissions:
            perm_id = await session.scalar(
                select(Permission.id).where(Permission.name == perm_name)
            )
            if perm_id is None:
                perm = Permission(name=perm_name)
                session.add(perm)
                await session.flush()
                perm_id = perm.id
            session.add(RolePermission(role_id=role.id, permission_id=perm_id))
        return role.id


async def create_profile(
    app: FastAPI, user_id: uuid.UUID | None = None, *, roles: Sequence[uuid.UUID] = ()
) -> uuid.UUID:
    """A known user (a profile) holding the roles given by id; their user id."""
    user_id = user_id or uuid.uuid4()
    async with app.state.session_factory.begin() as session:
        session.add(Profile(user_id=user_id))
        await session.flush()
        session.add_all(UserRole(user_id=user_id, role_id=role_id) for role_id in roles)
    return user_id
