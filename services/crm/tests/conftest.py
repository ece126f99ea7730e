from collections.abc import AsyncIterator
from functools import partial

import httpx
import pytest
import pytest_asyncio

from crm_service.app import build_app
from crm_service.settings import CrmSettings
from pipedesk_common.testing.plugin import OpenService


@pytest.fixture
def crm_app(open_service: OpenService) -> OpenService:
    """``async with crm_app(clock=…, **settings) as client``: the CRM app, in-process."""
    return partial(open_service, build_app, CrmSettings)


@pytest_asyncio.fixture
async def crm(crm_app: OpenService) -> AsyncIterator[httpx.AsyncClient]:
    async with crm_app() as client:
        yield client
