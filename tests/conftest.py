"""Fixtures for suites that run several services together."""

from functools import partial
from importlib.metadata import entry_points
from typing import Any

import pytest

from crm_service.app import build_app as build_crm
from crm_service.settings import CrmSettings
from pipedesk_testkit.plugin import OpenService
from timeline_service.app import build_app as build_timeline
from timeline_service.settings import TimelineSettings


@pytest.fixture
def crm_app(open_service: OpenService) -> OpenService:
    return partial(open_service, build_crm, CrmSettings)


@pytest.fixture
def timeline_app(open_service: OpenService) -> OpenService:
    return partial(open_service, build_timeline, TimelineSettings)


@pytest.fixture(scope="session")
def service_documents() -> dict[str, dict[str, Any]]:
    """Every installed service's own OpenAPI document (the app of its ``pipedesk.services``
    entry point), made once for the run: copy one before changing it."""
    return {
        entry.name: entry.load()().openapi() for entry in entry_points(group="pipedesk.services")
    }
