"""Startup and shutdown hooks of this domain, called from main.lifespan."""

from fastapi import FastAPI

from auth_service.rbac.bootstrap import bootstrap_initial_admin, seed_core_rbac


async def startup(app: FastAPI) -> None:
    async with app.state.session_factory.begin() as session:
        await seed_core_rbac(session)
    # users' startup (earlier) sets identity_provider, or None without Supabase.
    await bootstrap_initial_admin(
        app.state.session_factory,
        app.state.settings,
        getattr(app.state, "identity_provider", None),
    )


async def shutdown(app: FastAPI) -> None:
    return None
