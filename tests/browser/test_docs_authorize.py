"""An admin authorises in /docs (Swagger UI) and calls an admin endpoint from there.

FastAPI's /docs page loads Swagger UI from the jsDelivr CDN, which this machine cannot reach.
The test answers those two requests with the same files (swagger-ui-dist 5, shipped by the
swagger-ui-bundle-v2 dev dependency) and aborts every other off-host request, so the page,
the OpenAPI document, the token and the API calls are all the real app's.
"""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import Page, Route, async_playwright, expect
from swagger_ui_bundle import swagger_ui_path

from tests.browser.conftest import CHROMIUM_ARGS
from tests.factories import client_token, create_client, create_role

pytestmark = pytest.mark.browser

CDN = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/"


async def _serve_offline(page: Page, live_url: str) -> None:
    async def handle(route: Route) -> None:
        url = route.request.url
        if url.startswith(live_url):
            await route.continue_()
        elif url.startswith(CDN):
            name = url.removeprefix(CDN).split("?")[0]
            asset = swagger_ui_path / name
            if name in ("swagger-ui-bundle.js", "swagger-ui.css") and asset.is_file():
                kind = "application/javascript" if name.endswith(".js") else "text/css"
                await route.fulfill(body=asset.read_bytes(), content_type=kind)
            else:
                await route.abort()
        else:
            await route.abort()  # favicon and anything else off-host

    await page.route("**/*", handle)


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
            await _serve_offline(page, live_url)
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
            await expect(dialog.locator("h4")).to_contain_text("BearerToken")
            await dialog.locator("#auth-bearer-value").fill(token)
            await dialog.get_by_role("button", name="Apply credentials").click()
            await expect(dialog.locator("button", has_text="Logout")).to_be_visible()
            await dialog.locator("button.btn-done").click()

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
        finally:
            await browser.close()
