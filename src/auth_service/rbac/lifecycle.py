"""Startup and shutdown hooks of this domain, called from main.lifespan."""

from fastapi import FastAPI

from auth_service.rbac.bootstrap import seed_core_rbac


async def startup(app: FastAPI) -> None:
    async with app.state.session_factory.begin() as session:
        await seed_core_rbac(session)


async def shutdown(app: FastAPI) -> None:
    return None
