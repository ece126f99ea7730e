"""Browser tests: Debian's Chromium driven headless by Playwright, against the system on real
sockets. Chromium is never downloaded (no ``playwright install``): ``make test`` installs Debian's
package when it is missing, and these tests fail, never skip, without it.

Every step's screenshot is kept in ``test-artifacts/browser/`` (git-ignored), emptied at the start
of each run; the path is printed at the end of the run.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright

from accounts_service.app import build_app as build_accounts
from accounts_service.settings import CALLBACK_PATH, AccountsSettings
from calendar_service.app import build_app as build_calendar
from calendar_service.settings import CalendarSettings
from crm_service.app import build_app as build_crm
from crm_service.settings import CrmSettings
from google_emulator.app import create_emulator_app
from pipedesk_gateway.app import build_app as build_gateway
from pipedesk_gateway.settings import GatewaySettings
from pipedesk_testkit.identities import Identity
from pipedesk_testkit.servers import free_port, serve_in_thread
from tasks_service.app import build_app as build_tasks
from tasks_service.settings import TasksSettings
from timeline_service.app import build_app as build_timeline
from timeline_service.settings import TimelineSettings

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
# The flags that work in this sandbox and in CI; the host resolver rule cuts the browser off from
# every host but 127.0.0.1, so nothing can load from outside.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
SERVICES = ("crm", "timeline", "accounts", "calendar", "tasks")
_screenshots_taken: list[Path] = []


@dataclass
class Shots:
    """Numbered screenshots of one test, kept as artifacts."""

    directory: Path
    taken: list[Path] = field(default_factory=list)

    async def take(self, page: Page, step: str, *, full_page: bool = True) -> Path:
        path = self.directory / f"{len(self.taken) + 1:02d}-{step}.png"
        await page.screenshot(path=str(path), full_page=full_page)
        self.taken.append(path)
        _screenshots_taken.append(path)
        return path


@pytest.fixture(scope="session")
def artifacts() -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


@pytest.fixture
def shots(artifacts: Path, request: pytest.FixtureRequest) -> Shots:
    directory = artifacts / request.node.name
    directory.mkdir()
    return Shots(directory)


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's Chromium "
            "(make test installs it as root; otherwise: apt-get install chromium)"
        )
    return CHROMIUM


@pytest_asyncio.fixture
async def browser(chromium: Path, tmp_path: Path) -> AsyncIterator[Browser]:
    """Headless Chromium from Debian, a fresh profile per test."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium),
            headless=True,
            args=[*CHROMIUM_FLAGS, f"--disk-cache-dir={tmp_path / 'cache'}"],
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass(frozen=True)
class Stack:
    """The whole system on real sockets, behind one gateway, with the Google emulator."""

    gateway_url: str
    emulator_url: str
    identity: Identity
    frontend_origin: str


@pytest.fixture(scope="module")
def stack(service_env: dict[str, str], identity: Identity) -> Iterator[Stack]:
    """Gateway, CRM, timeline, accounts, calendar and tasks, each a uvicorn server, wired as
    ``make run`` wires them: the gateway's console signs in through the run's identity provider,
    Google's consent returns through the gateway's callback, and the callback to the console.
    Per module: its consumers share the run's queues, so it must not outlive the browser tests
    (another suite's timeline would lose events to it)."""
    ports = {name: free_port() for name in (*SERVICES, "gateway", "frontend")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    gateway = urls["gateway"]
    with ExitStack() as servers:
        emulator = servers.enter_context(serve_in_thread(create_emulator_app()))
        google = emulator + "/"
        common: dict[str, Any] = {**service_env, "GOOGLE_ROOT_URL": google}
        linked: dict[str, Any] = {**common, "crm_url": urls["crm"]}
        apps = {
            "crm": lambda: build_crm(CrmSettings(**common)),
            "timeline": lambda: build_timeline(TimelineSettings(**linked)),
            "accounts": lambda: build_accounts(
                AccountsSettings(
                    **common,
                    google_redirect_uri=gateway + CALLBACK_PATH,
                    frontend_url=gateway + "/app/",
                )
            ),
            "calendar": lambda: build_calendar(
                CalendarSettings(**linked, webhook_url=gateway + "/webhooks/google/calendar")
            ),
            "tasks": lambda: build_tasks(TasksSettings(**linked)),
            "gateway": lambda: build_gateway(
                GatewaySettings(**service_env, FRONTEND_ORIGINS=urls["frontend"])
            ),
        }
        # Where the others are is read from the environment while the apps are built and start
        # (as each process of make run reads it), and only then: other tests never see it.
        with pytest.MonkeyPatch.context() as env:
            for name in SERVICES:
                env.setenv(f"{name.upper()}_URL", urls[name])
            env.setenv("IDENTITY_URL", identity.url)
            for name, build in apps.items():
                servers.enter_context(serve_in_thread(build(), port=ports[name]))
                # FastAPI builds an app's routes on its first request. Here the apps share one
                # process, so each builds them now, one after another, as separate processes
                # would: when the calendar and tasks apps built theirs concurrently in threads,
                # pydantic now and then warned about a body field's alias (an error here, so a
                # 500 in the middle of a test).
                httpx.get(f"{urls[name]}/no-such-route", timeout=10)
        yield Stack(gateway, emulator, identity, urls["frontend"])


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _screenshots_taken:
        terminalreporter.write_line(
            f"browser screenshots ({len(_screenshots_taken)}): {ARTIFACTS}", bold=True
        )
