from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest

from crm_service.app import build_app as build_crm
from crm_service.settings import CrmSettings
from pipedesk_gateway.app import build_app
from pipedesk_gateway.settings import GatewaySettings
from pipedesk_testkit.clients import app_client
from pipedesk_testkit.servers import serve_in_thread
from timeline_service.app import build_app as build_timeline
from timeline_service.settings import TimelineSettings


@pytest.fixture(scope="module")
def upstreams(service_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The CRM and timeline services on real sockets, as the gateway reaches them."""
    with (
        serve_in_thread(build_crm(CrmSettings(**service_env))) as crm_url,
        serve_in_thread(
            build_timeline(TimelineSettings(**service_env, CRM_URL=crm_url))
        ) as timeline_url,
    ):
        yield {"CRM_URL": crm_url, "TIMELINE_URL": timeline_url}


GatewayClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def gateway_client(service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> GatewayClient:
    """``async with gateway_client(urls, **settings) as gateway``: a gateway in-process whose
    services are at ``urls`` (``{"CRM_URL": …}``, set in the environment for the test)."""

    def open_gateway(
        urls: dict[str, str], **settings: Any
    ) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        for name, url in urls.items():
            monkeypatch.setenv(name, url)
        settings = {**service_env, **settings}
        return app_client(build_app(GatewaySettings(**settings)), "http://gateway")

    return open_gateway
