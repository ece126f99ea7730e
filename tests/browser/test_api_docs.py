"""/docs (Swagger UI) and /redoc render with the network cut off: every script, stylesheet and
the OpenAPI document come from the gateway, and the pages run under their CSP."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from playwright.async_api import Browser, ConsoleMessage, expect

if TYPE_CHECKING:
    from conftest import Shots, Stack

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


async def test_swagger_ui_and_redoc_render_with_the_network_cut_off(
    stack: Stack, browser: Browser, shots: Shots
) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 1000})
    loaded: list[str] = []
    refused: list[tuple[str, str | None]] = []
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and REDOCLY_LOGO not in message.text:
            problems.append(message.text)

    context.on("requestfinished", lambda request: loaded.append(request.url))
    context.on("requestfailed", lambda request: refused.append((request.url, request.failure)))
    page = await context.new_page()
    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))

    await page.goto(f"{stack.gateway_url}/docs")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text(
        "PipeDesk API", timeout=20_000
    )
    operation = page.locator(
        ".opblock-summary-path", has_text="/api/timeline/{record_type}/{record_id}"
    )
    await expect(operation.first).to_be_visible()
    assert await page.locator(".opblock").count() > 30
    await shots.take(page, "swagger-ui", full_page=False)  # the page is very long

    await page.goto(f"{stack.gateway_url}/redoc")
    await expect(
        page.get_by_role("heading", name="A record's timeline, newest first")
    ).to_be_visible(timeout=20_000)
    await shots.take(page, "redoc", full_page=False)

    gateway = (stack.gateway_url + "/", f"blob:{stack.gateway_url}/")  # ReDoc's search worker
    assert [url for url in loaded if not url.startswith(gateway)] == []
    assert f"{stack.gateway_url}/docs/assets/swagger-ui-bundle.js" in loaded
    assert f"{stack.gateway_url}/docs/assets/redoc.standalone.js" in loaded
    # ReDoc's sidebar always shows Redocly's logo from their site: the page's CSP refuses it
    # before it leaves the browser, and ReDoc then leaves it out. (Requests to the gateway that
    # leaving /docs for /redoc cut short fail too, harmlessly.)
    beyond = [failure for failure in refused if not failure[0].startswith(gateway)]
    assert beyond in ([], [(REDOCLY_LOGO, "csp")])
    assert problems == []
    await context.close()
