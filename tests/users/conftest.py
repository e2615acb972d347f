from __future__ import annotations

import pytest

from auth_service.config import Settings
from tests.conftest import make_settings
from tests.factories import supabase_overrides
from tests.support.gotrue import GoTrueStandIn


@pytest.fixture
def settings(database_url: str, redis_url: str | None, gotrue: GoTrueStandIn) -> Settings:
    """The app under test talks to the GoTrue stand-in."""
    return make_settings(
        auth_service_database_url=database_url, redis_url=redis_url, **supabase_overrides(gotrue)
    )
