"""An admin authorises in /docs (Swagger UI) and calls an admin endpoint from there.

/docs is served entirely by the app (Swagger UI's assets included), so the test lets the page
reach the app and nothing else, and fails if it ever tries to load anything from elsewhere.
"""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import Page, Route, async_playwright, expect

from tests.browser.conftest import CHROMIUM_ARGS
from tests.factories import client_token, create_client, create_role

pytestmark = pytest.mark.browser


async def _only_the_app(page: Page, live_url: str) -> list[str]:
    """Route every request: the app's go through, anything off-host is refused and recorded."""
    off_host: list[str] = []

    async def handle(route: Route) -> None:
        url = route.request.url
        if url.startswith(live_url):
            await route.continue_()
        else:
            off_host.append(url)
            await route.abort()

    await page.route("**/*", handle)
    return off_host


async def test_admin_authorizes_in_docs_and_lists_roles(
    chromium: str, live_url: str, app: FastAPI
) -> None:
    await create_role(app, f"docs-{uuid.uuid4().hex[:6]}")
    client_id, secret = await create_client(app, roles=["admin"])
    async with httpx.AsyncClient(base_url=live_url) as http:
        token = await client_token(http, client_id, secret)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            off_host = await _only_the_app(page, live_url)
            await page.goto(f"{live_url}/docs")

            operation = page.locator(".opblock.opblock-get").filter(
                has=page.locator('.opblock-summary-path[data-path="/auth/admin/roles"]')
            )
            await operation.locator(".opblock-summary").click()
            await operation.get_by_role("button", name="Try it out").click()

            # Before authorising: the call is refused.
            await operation.get_by_role("button", name="Execute").click()
            status = operation.locator(
                ".live-responses-table tr.response .response-col_status"
            ).first
            await expect(status).to_have_text(re.compile(r"^\s*401"))

            # Authorize: paste the token into the bearer scheme's field.
            await page.locator(".auth-wrapper .authorize").click()
            dialog = page.locator(".dialog-ux")
            await expect(dialog.locator("h4").first).to_contain_text("BearerToken")
            await dialog.locator("#auth-bearer-value").fill(token)
            await dialog.get_by_role("button", name="Apply credentials").first.click()
            await expect(dialog.locator("button", has_text="Logout").first).to_be_visible()
            await dialog.locator("button.btn-done").first.click()

            await operation.get_by_role("button", name="Execute").click()
            await expect(status).to_have_text(re.compile(r"^\s*200"))
            await expect(operation.locator(".curl-command")).to_contain_text(
                f"Authorization: Bearer {token}"
            )
            body = operation.locator(
                ".live-responses-table tr.response .response-col_description pre"
            ).first
            await expect(body).to_contain_text('"name": "admin"')
            await expect(body).to_contain_text('"total": 4')
            assert off_host == [], f"/docs tried to load third-party resources: {off_host}"
        finally:
            await browser.close()


async def test_admin_logs_in_with_client_credentials_and_docs_fetch_the_token(
    chromium: str, live_url: str, app: FastAPI
) -> None:
    client_id, secret = await create_client(app, roles=["admin"])
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            off_host = await _only_the_app(page, live_url)
            token_calls: list[str] = []
            page.on(
                "request",
                lambda r: token_calls.append(r.method) if r.url.endswith("/auth/token") else None,
            )
            await page.goto(f"{live_url}/docs")

            # Authorize with the client id and secret only: Swagger UI asks /auth/token itself.
            await page.locator(".auth-wrapper .authorize").click()
            dialog = page.locator(".dialog-ux")
            await expect(dialog).to_contain_text("ClientCredentials")
            await dialog.locator("#client_id_clientCredentials").fill(str(client_id))
            await dialog.locator("#client_secret_clientCredentials").fill(secret)
            await dialog.get_by_role("button", name="Apply given OAuth2 credentials").click()
            await expect(dialog.locator("button", has_text="Logout").first).to_be_visible()
            await dialog.locator("button.btn-done").first.click()
            assert token_calls == ["POST"]

            operation = page.locator(".opblock.opblock-get").filter(
                has=page.locator('.opblock-summary-path[data-path="/auth/admin/roles"]')
            )
            await operation.locator(".opblock-summary").click()
            await operation.get_by_role("button", name="Try it out").click()
            await operation.get_by_role("button", name="Execute").click()
            status = operation.locator(
                ".live-responses-table tr.response .response-col_status"
            ).first
            await expect(status).to_have_text(re.compile(r"^\s*200"))
            await expect(operation.locator(".curl-command")).to_contain_text(
                "Authorization: Bearer ey"
            )
            assert off_host == [], f"/docs tried to load third-party resources: {off_host}"
        finally:
            await browser.close()
