"""Browser tests: Debian's Chromium driven headless by Playwright, against the system on real
sockets. Chromium is never downloaded (no ``playwright install``): ``make test`` installs Debian's
package when it is missing, and these tests fail, never skip, without it.

Every step's screenshot is kept in ``test-artifacts/browser/`` (git-ignored), emptied at the start
of each run; the path is printed at the end of the run.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright

from pipedesk_testkit.identities import Identity
from pipedesk_testkit.stack import Stack, serve_stack

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


@pytest.fixture(scope="module")
def stack(service_env: dict[str, str], identity: Identity) -> Iterator[Stack]:
    """The whole system on real sockets (``pipedesk_testkit.stack``), once for the module."""
    services = ("crm", "timeline", "accounts", "calendar", "tasks")
    with serve_stack(service_env, identity, services=services) as system:
        yield system


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _screenshots_taken:
        terminalreporter.write_line(
            f"browser screenshots ({len(_screenshots_taken)}): {ARTIFACTS}", bold=True
        )
