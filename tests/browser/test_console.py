"""The console at /app in a real browser: sign in, connect Google through the emulator, open a
lead, create a meeting and a task on it and see them arrive on the timeline live; another team's
rep gets the not-found page."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, expect

if TYPE_CHECKING:
    from conftest import Shots, Stack

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

LIVE = 30_000  # ms: an item crosses the outbox relay, the broker and the timeline's consumer


def demo_token(stack: Stack, sub: str, teams: list[str]) -> str:
    token: str = stack.identity.minter.mint(
        sub=sub, org_id="demo", role="rep", email=f"{sub}@demo.pipedesk.test", team_ids=teams
    )
    return token


def create_lead(stack: Stack, token: str, title: str) -> str:
    answer = httpx.post(
        f"{stack.gateway_url}/api/leads",
        json={"title": title},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    lead_id: str = answer.json()["id"]
    return lead_id


@pytest.fixture
def rita_lead(stack: Stack) -> tuple[str, str]:
    title = f"Console lead {uuid.uuid4().hex[:8]}"
    return title, create_lead(stack, demo_token(stack, "rita", ["sales-emea"]), title)


def console_errors(page: Page) -> list[str]:
    """Errors the page logs: script errors and Content-Security-Policy violations alike."""
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "response",
        lambda response: (
            response.status >= 500
            and errors.append(f"{response.status} {response.request.method} {response.url}")
        ),
    )
    return errors


async def sign_in(page: Page, stack: Stack, sub: str) -> None:
    await page.goto(f"{stack.gateway_url}/app/")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.locator(f'button[data-user="{sub}"]').click()
    await expect(page.locator("#signed-in-as")).to_contain_text(f"{sub} · rep · demo")


async def test_a_rep_signs_in_connects_google_and_sees_a_new_meeting_arrive_live(
    stack: Stack, browser: Browser, shots: Shots, rita_lead: tuple[str, str]
) -> None:
    lead_title, lead_id = rita_lead
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors = console_errors(page)

    await sign_in(page, stack, "rita")
    await expect(page.get_by_role("link", name=lead_title)).to_be_visible()
    await shots.take(page, "signed-in-leads")

    await page.get_by_role("link", name="Google").click()
    await expect(page.locator(".google-status")).to_have_attribute("data-status", "not_connected")
    await page.locator("#connect-google").click()  # to the emulator's consent, and back
    await expect(page.locator("#flash")).to_contain_text("Google connected: calendar,tasks")
    await expect(page).to_have_url(re.compile(r"/app/#/google$"))
    await expect(page.locator(".google-status")).to_have_attribute("data-status", "connected")
    await shots.take(page, "google-connected")

    await page.get_by_role("link", name="Leads").click()
    await page.get_by_role("link", name=lead_title).click()
    await expect(page.locator("#record-title")).to_have_text(lead_title)
    timeline = page.locator("#timeline-items")
    await expect(page.locator("#stream-state")).to_have_text("● live", timeout=LIVE)
    await expect(timeline.get_by_text("Lead created")).to_be_visible(timeout=LIVE)
    await shots.take(page, "lead-timeline")

    await page.evaluate("window.stillTheSamePage = true")  # gone if anything reloads the page
    meeting = f"Pitch {uuid.uuid4().hex[:6]}"
    await page.locator("#new-meeting input[name=summary]").fill(meeting)
    await page.locator("#new-meeting button[type=submit]").click()
    arrived = timeline.locator('li[data-kind="meeting"]', has_text=meeting)
    await expect(arrived).to_be_visible(timeout=LIVE)
    await expect(arrived).to_have_attribute("data-arrived", "stream")
    await expect(page.locator("#panel-meetings")).to_contain_text(meeting)
    await shots.take(page, "meeting-arrived-live")

    task = f"Send the proposal {uuid.uuid4().hex[:6]}"
    await page.locator("#new-task input[name=title]").fill(task)
    await page.locator("#new-task button[type=submit]").click()
    await expect(page.locator("#panel-tasks")).to_contain_text(task)
    task_item = timeline.locator('li[data-kind="task"]', has_text=task)
    await expect(task_item).to_be_visible(timeout=LIVE)
    await expect(task_item).to_have_attribute("data-arrived", "stream")

    # If-None-Match with the page's ETag: the items that arrived since make it stale (200), and
    # the page then loaded is current (304).
    await page.locator("#revalidate").click()
    await expect(page.locator("#last-check")).to_have_text("revalidated: 200, changed")
    await page.locator("#revalidate").click()
    await expect(page.locator("#last-check")).to_have_text("revalidated: 304 not modified")
    assert await page.evaluate("window.stillTheSamePage") is True
    assert page.url.endswith(f"/app/#/lead/{lead_id}")
    await shots.take(page, "task-arrived-and-revalidated")
    assert errors == []
    await context.close()


async def test_another_teams_rep_gets_the_not_found_page(
    stack: Stack, browser: Browser, shots: Shots, rita_lead: tuple[str, str]
) -> None:
    lead_title, lead_id = rita_lead
    rita = await browser.new_context()
    rita_page = await rita.new_page()
    await sign_in(rita_page, stack, "rita")
    await rita_page.goto(f"{stack.gateway_url}/app/#/lead/{lead_id}")
    await expect(rita_page.locator("#record-title")).to_have_text(lead_title)

    ravi = await browser.new_context()  # a second browser session, another team's rep
    page = await ravi.new_page()
    errors = console_errors(page)
    await sign_in(page, stack, "ravi")
    await expect(page.get_by_role("link", name=lead_title)).to_have_count(0)
    await page.goto(f"{stack.gateway_url}/app/#/lead/{lead_id}")
    await expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    await expect(page.locator("#record-title")).to_have_count(0)
    await expect(page.get_by_text(lead_title)).to_have_count(0)
    await shots.take(page, "other-team-not-found")
    assert [error for error in errors if not error.startswith("Failed to load resource")] == []
    await rita.close()
    await ravi.close()
