"""Small data factories shared by the domain tests (add yours here, one function each)."""


# --- machine clients (oauth2/clients helper) -------------------------------------------------

import uuid
from collections.abc import Sequence

import httpx
from fastapi import FastAPI

from auth_service.clients.service import ClientService


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
    async with app.state.session_factory.begin() as session:
        view, plain = await ClientService(session, app.state.settings).create(
            name=name or f"client-{uuid.uuid4().hex[:10]}",
            role_names=roles,
            allowed_audiences=audiences or (),
            secret=secret,
            is_active=is_active,
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
