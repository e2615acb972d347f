"""One scenario suite, two providers: every test taking `human` runs against both adapters.

- `supabase`: the Supabase adapter through the real supabase client and the GoTrue stand-in;
- `local`: the local adapter on our own tables.

Where they differ, `Human.differs` names the difference instead of skipping the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from auth_service.identity.local.models import DevMailboxMessage
from auth_service.main import create_app
from tests.conftest import make_settings
from tests.factories import supabase_overrides
from tests.support.gotrue import GoTrueStandIn

ALLOWED_REDIRECT = "https://app.example.com/auth"

# Declared differences: (name, provider that differs) -> why. The behaviour each one changes is
# asserted for both sides where the test checks it, never skipped.
DIFFERENCES = {
    # The stand-in replays a parent forever; GoTrue and the local provider only within the
    # reuse window: tests/identity/test_local_provider.py covers the window's end.
    ("reuse_window", "supabase"): "no window in the stand-in",
    # GoTrue keeps a banned user's sessions (refresh answers `user_banned`, and works again
    # once the ban is lifted); the local provider ends them when the ban starts.
    ("ban_ends_sessions", "local"): "sessions deleted by the ban",
}


@dataclass
class Human:
    provider: str
    client: httpx.AsyncClient
    app: FastAPI
    gotrue: GoTrueStandIn | None

    def differs(self, name: str) -> bool:
        """True when this provider is declared to behave differently for `name`."""
        return (name, self.provider) in DIFFERENCES

    async def last_email(self, email: str) -> dict[str, Any]:
        """The newest mail to `email`: at least `type`, `token` (6 digits) and `token_hash`."""
        if self.gotrue is not None:
            return self.gotrue.last_email(email)
        async with self.app.state.session_factory() as session:
            row = await session.scalar(
                select(DevMailboxMessage)
                .where(DevMailboxMessage.to_address == email.lower())
                .order_by(DevMailboxMessage.id.desc())
                .limit(1)
            )
        assert row is not None, f"no mail to {email}"
        return {**row.meta, "subject": row.subject, "body": row.body}

    async def mail_count(self, email: str) -> int:
        if self.gotrue is not None:
            return sum(1 for m in self.gotrue.outbox if m["email"] == email)
        async with self.app.state.session_factory() as session:
            rows = await session.scalars(
                select(DevMailboxMessage.id).where(DevMailboxMessage.to_address == email.lower())
            )
            return len(rows.all())


HumanFactory = Callable[..., AbstractAsyncContextManager[Human]]


@pytest.fixture(params=["supabase", "local"])
def human_with(
    request: pytest.FixtureRequest,
    database_url: str,
    redis_url: str | None,
    gotrue: GoTrueStandIn,
    clean_db: None,
) -> HumanFactory:
    """`async with human_with(autoconfirm=False, **settings) as h:` for either provider."""
    provider: str = request.param

    @asynccontextmanager
    async def run(*, autoconfirm: bool = True, **overrides: Any) -> AsyncIterator[Human]:
        values: dict[str, Any] = {
            "auth_service_database_url": database_url,
            "redis_url": redis_url,
            "oauth_redirect_allow_list": [ALLOWED_REDIRECT],
        }
        if provider == "supabase":
            values.update(supabase_overrides(gotrue))
            gotrue.autoconfirm = autoconfirm
        else:
            values.update(identity_provider="local", local_autoconfirm=autoconfirm)
        values.update(overrides)
        application = create_app(make_settings(**values))
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                yield Human(provider, c, application, gotrue if provider == "supabase" else None)
        gotrue.autoconfirm = True

    return run


@pytest.fixture
async def human(human_with: HumanFactory) -> AsyncIterator[Human]:
    async with human_with() as h:
        yield h
