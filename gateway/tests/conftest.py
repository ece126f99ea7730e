from collections.abc import Iterator

import pytest

from crm_service.app import build_app as build_crm
from crm_service.settings import CrmSettings
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
