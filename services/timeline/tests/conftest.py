from functools import partial

import pytest

from pipedesk_common.testing.plugin import OpenService
from timeline_service.app import build_app
from timeline_service.settings import TimelineSettings


@pytest.fixture
def timeline_app(open_service: OpenService) -> OpenService:
    """``async with timeline_app(clock=…, **settings) as client``: the timeline app, in-process."""
    return partial(open_service, build_app, TimelineSettings)
