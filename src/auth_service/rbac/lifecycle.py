"""Startup and shutdown hooks of this domain, called from main.lifespan."""

from fastapi import FastAPI


async def startup(app: FastAPI) -> None:
    return None


async def shutdown(app: FastAPI) -> None:
    return None
