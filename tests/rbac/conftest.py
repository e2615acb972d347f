from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from tests.factories import admin_headers


@pytest.fixture
async def admin(app: FastAPI, client: httpx.AsyncClient) -> dict[str, str]:
    """Bearer headers of a machine client holding the core `admin` role."""
    return await admin_headers(app, client)
