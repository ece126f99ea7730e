"""The gateway refuses a deactivated user's valid token itself (``403 user-deactivated``), from
its own reading of the CRM's deactivated users, before any service is asked; reactivated, the
user is let through again."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from crm_service.app import build_app as build_crm
from crm_service.settings import CrmSettings
from pipedesk_common.auth import Role
from pipedesk_testkit.google import GoogleStack
from pipedesk_testkit.identities import Users
from pipedesk_testkit.servers import free_port, serve_in_thread
from pipedesk_testkit.waiting import eventually

if TYPE_CHECKING:
    from conftest import GatewayClient

pytestmark = pytest.mark.asyncio


async def test_a_deactivated_users_token_is_refused_at_the_gateway_until_reactivated(
    gateway_client: GatewayClient, users: Users, service_env: dict[str, str], google: GoogleStack
) -> None:
    # Nothing listens for the timeline: a request the gateway forwarded there would be a 502.
    nowhere = f"http://127.0.0.1:{free_port()}"
    # The accounts service is the one part of the lifecycle here (the user has no Google).
    crm_settings = CrmSettings(**service_env, lifecycle_services=["accounts"])
    with serve_in_thread(build_crm(crm_settings)) as crm_url:
        urls = {"CRM_URL": crm_url, "TIMELINE_URL": nowhere}
        admin = users.make(Role.ADMIN)
        rep = users.make(Role.REP)
        async with gateway_client(urls, AUTH_REFUSALS_REFRESH_SECONDS="0.2") as gateway:
            for user in (admin, rep):
                assert (await gateway.get("/api/leads", headers=user.headers)).status_code == 200
            timeline = "/api/timeline/lead/0190a0c0-0000-7000-8000-000000000000"
            assert (await gateway.get(timeline, headers=rep.headers)).status_code == 502

            deactivated = await gateway.post(
                f"/api/users/{rep.sub}/deactivate",
                json={"reassign_to": admin.sub},
                headers=admin.headers,
            )
            assert deactivated.status_code == 201, deactivated.text

            async def status() -> httpx.Response:
                return await gateway.get(timeline, headers=rep.headers)

            refused = await eventually(status, until=lambda answer: answer.status_code == 403)
            assert refused.json()["type"] == "urn:pipedesk:problem:user-deactivated"
            assert (await gateway.get(timeline, headers=admin.headers)).status_code == 502

            assert deactivated.json()["status"] == "completed"

            back = await gateway.post(f"/api/users/{rep.sub}/reactivate", headers=admin.headers)
            assert back.status_code == 200, back.text
            await eventually(status, until=lambda answer: answer.status_code == 502)
