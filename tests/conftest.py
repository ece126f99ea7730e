"""Fixtures for suites that run several services together."""

from collections.abc import Iterator
from functools import partial
from importlib.metadata import entry_points
from typing import Any

import pytest

from crm_service.app import build_app as build_crm
from crm_service.settings import CrmSettings
from pipedesk_testkit.plugin import OpenService
from pipedesk_testkit.servers import serve_in_thread
from pipedesk_testkit.service import World
from timeline_service.app import build_app as build_timeline
from timeline_service.settings import TimelineSettings


@pytest.fixture
def crm_app(open_service: OpenService) -> OpenService:
    return partial(open_service, build_crm, CrmSettings, jobs_enabled=False)


@pytest.fixture
def timeline_app(open_service: OpenService) -> OpenService:
    return partial(open_service, build_timeline, TimelineSettings)


@pytest.fixture
def timeline_url(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The timeline on a socket, consuming from the start (``TIMELINE_URL`` says where, for
    gmail, which asks it which records a teammate's mail is on)."""
    settings = TimelineSettings(**{**world.service_env, "crm_url": world.crm_url})
    with serve_in_thread(build_timeline(settings)) as url:
        monkeypatch.setenv("TIMELINE_URL", url)
        yield url


@pytest.fixture(scope="session")
def service_documents() -> dict[str, dict[str, Any]]:
    """Every installed service's own OpenAPI document (the app of its ``pipedesk.services``
    entry point), made once for the run: copy one before changing it."""
    return {
        entry.name: entry.load()().openapi() for entry in entry_points(group="pipedesk.services")
    }
