from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest_asyncio
from fastapi import FastAPI

from crm_service.app import build_app
from crm_service.settings import CrmSettings
from pipedesk_common.clock import Clock

AppClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://crm") as client:
            yield client


@pytest_asyncio.fixture
async def crm_app(service_env: dict[str, str]) -> AppClient:
    """Open a CRM app with extra settings or a clock: ``async with crm_app(clock=…) as client``."""

    def open_app(
        clock: Clock | None = None, **overrides: Any
    ) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        settings = CrmSettings(**{**service_env, **overrides})
        return running(build_app(settings, clock=clock))

    return open_app


@pytest_asyncio.fixture
async def crm(crm_app: AppClient) -> AsyncIterator[httpx.AsyncClient]:
    async with crm_app() as client:
        yield client
