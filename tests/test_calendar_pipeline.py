"""A meeting linked to a lead reaches the lead's timeline, and a change made in Google (another
attendee moved it) reaches it too: push → incremental sync → event → timeline."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from calendar_service.app import build_app as build_calendar
from calendar_service.settings import WEBHOOK_PATH, CalendarSettings
from crm_service.app import build_app as build_crm
from crm_service.settings import CrmSettings
from pipedesk_common.auth import Role
from pipedesk_testkit.google import GoogleStack
from pipedesk_testkit.identities import Users
from pipedesk_testkit.plugin import OpenService
from pipedesk_testkit.servers import free_port, serve_in_thread
from pipedesk_testkit.waiting import eventually

pytestmark = pytest.mark.asyncio


@contextmanager
def served_calendar(service_env: dict[str, str], crm_url: str) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = CalendarSettings(
        **service_env, crm_url=crm_url, webhook_url=url + WEBHOOK_PATH, jobs_enabled=False
    )
    with serve_in_thread(build_calendar(settings), port=port):
        yield url


async def meetings(timeline: httpx.AsyncClient, user: Any, lead_id: str) -> list[dict[str, Any]]:
    answer = await timeline.get(
        f"/api/timeline/lead/{lead_id}", params={"kinds": "meeting"}, headers=user.headers
    )
    return list(answer.json()["items"]) if answer.status_code == 200 else []


async def test_a_meeting_moved_in_google_updates_the_leads_timeline(
    google: GoogleStack,
    timeline_app: OpenService,
    users: Users,
    service_env: dict[str, str],
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    await google.connect(rep, ["calendar"])
    with (
        serve_in_thread(build_crm(CrmSettings(**service_env))) as crm_url,
        served_calendar(service_env, crm_url) as calendar_url,
    ):
        async with (
            timeline_app(CRM_URL=crm_url) as timeline,
            httpx.AsyncClient(base_url=crm_url) as crm,
            httpx.AsyncClient(base_url=calendar_url, timeout=30) as calendar,
        ):
            lead = (
                await crm.post("/api/leads", json={"title": "Acme"}, headers=rep.headers)
            ).json()
            watched = await calendar.post("/api/calendar/watch", headers=rep.headers)
            assert watched.status_code == 200
            event = (
                await calendar.post(
                    "/api/calendar/events",
                    json={
                        "title": "Acme kick-off",
                        "start": "2030-03-04T10:00:00Z",
                        "end": "2030-03-04T11:00:00Z",
                        "attendees": ["buyer@acme.example"],
                        "conference": True,
                        "links": [{"type": "lead", "id": lead["id"]}],
                    },
                    headers=rep.headers,
                )
            ).json()
            first = await eventually(lambda: meetings(timeline, rep, lead["id"]))
            assert first[0]["title"] == "Acme kick-off"
            assert first[0]["participants"] == sorted(["buyer@acme.example", rep.principal.email])
            assert first[0]["source"]["url"] == event["hangout_link"]

            await google.admin(
                "PATCH",
                f"/calendar/{rep.principal.email}/events/{event['google_id']}",
                json={"summary": "Acme kick-off (moved by the buyer)"},
            )
            moved = await eventually(
                lambda: meetings(timeline, rep, lead["id"]),
                until=lambda items: (
                    bool(items) and items[0]["title"].endswith("(moved by the buyer)")
                ),
            )
            assert len(moved) == 1  # the same item, updated
            stranger = users.make(Role.REP, teams=["t1"])
            refused = await timeline.get(
                f"/api/timeline/lead/{lead['id']}", headers=stranger.headers
            )
            assert refused.status_code == 404
    incremental = [
        call
        for call in await google.requests(user=rep.principal.email, api="calendar.events.list")
        if "syncToken" in call["query"]
    ]
    assert incremental
