"""A meeting linked to a lead reaches the lead's timeline, and a change made in Google (another
attendee moved it) reaches it too: push → incremental sync → event → timeline. A meeting in two
users' calendars is one item with both as holders."""

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from calendar_service.app import build_app as build_calendar
from calendar_service.settings import WEBHOOK_PATH, CalendarSettings
from crm_service.app import build_app as build_crm
from crm_service.settings import CrmSettings
from pipedesk_common.auth import Role
from pipedesk_common.db import connect_raw
from pipedesk_testkit.google import GoogleStack
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.plugin import OpenService
from pipedesk_testkit.servers import port_of, reserve_port, serve_in_thread
from pipedesk_testkit.waiting import eventually

# Each starts the timeline and waits for its events: none of earlier tests' may be ahead of them.
pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("quiet_broker")]


@dataclass
class Pipeline:
    """Clients of the CRM, the calendar service and the timeline, running together."""

    crm: httpx.AsyncClient
    calendar: httpx.AsyncClient
    timeline: httpx.AsyncClient


@contextmanager
def served_calendar(service_env: dict[str, str], crm_url: str) -> Iterator[str]:
    sock = reserve_port()
    url = f"http://127.0.0.1:{port_of(sock)}"
    settings = CalendarSettings(
        **service_env, crm_url=crm_url, webhook_url=url + WEBHOOK_PATH, jobs_enabled=False
    )
    with serve_in_thread(build_calendar(settings), sock=sock):
        yield url


@asynccontextmanager
async def pipeline(
    timeline_app: OpenService, service_env: dict[str, str]
) -> AsyncIterator[Pipeline]:
    with (
        serve_in_thread(build_crm(CrmSettings(**service_env))) as crm_url,
        served_calendar(service_env, crm_url) as calendar_url,
    ):
        async with (
            timeline_app(CRM_URL=crm_url) as timeline,
            httpx.AsyncClient(base_url=crm_url) as crm,
            httpx.AsyncClient(base_url=calendar_url, timeout=30) as calendar,
        ):
            yield Pipeline(crm, calendar, timeline)


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
    async with pipeline(timeline_app, service_env) as running:
        crm, calendar, timeline = running.crm, running.calendar, running.timeline
        lead = (await crm.post("/api/leads", json={"title": "Acme"}, headers=rep.headers)).json()
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
            until=lambda items: bool(items) and items[0]["title"].endswith("(moved by the buyer)"),
        )
        assert len(moved) == 1  # the same item, updated
        stranger = users.make(Role.REP, teams=["t1"])
        refused = await timeline.get(f"/api/timeline/lead/{lead['id']}", headers=stranger.headers)
        assert refused.status_code == 404
    incremental = [
        call
        for call in await google.requests(user=rep.principal.email, api="calendar.events.list")
        if "syncToken" in call["query"]
    ]
    assert incremental


async def test_a_series_is_one_item_with_its_next_occurrence_beside_its_changed_occurrences(
    google: GoogleStack,
    timeline_app: OpenService,
    users: Users,
    service_env: dict[str, str],
) -> None:
    """A weekly meeting linked to a lead: the lead's timeline shows the series once (with its
    next occurrence), and each occurrence moved or cancelled on its own as an item of its own,
    though all of them share the series' iCalUID."""
    rep = users.make(Role.REP, teams=["t1"])
    await google.connect(rep, ["calendar"])
    async with pipeline(timeline_app, service_env) as running:
        crm, calendar, timeline = running.crm, running.calendar, running.timeline
        lead = (await crm.post("/api/leads", json={"title": "Acme"}, headers=rep.headers)).json()
        series = await calendar.post(
            "/api/calendar/events",
            json={
                "title": "Acme weekly",
                "start": "2030-03-04T10:00:00",
                "end": "2030-03-04T11:00:00",
                "timezone": "Europe/Paris",
                "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=4"],
                "links": [{"type": "lead", "id": lead["id"]}],
            },
            headers=rep.headers,
        )
        assert series.status_code == 201, series.text
        path = f"/api/calendar/events/{series.json()['id']}"
        moved = await calendar.patch(
            path,
            params={"occurrence": "2030-03-11T09:00:00Z"},
            json={"title": "Acme weekly (Tuesday)", "start": "2030-03-12T15:00:00+01:00",
                  "end": "2030-03-12T16:00:00+01:00"},
            headers=rep.headers,
        )  # fmt: skip
        assert moved.status_code == 200, moved.text
        assert moved.json()["links"] == [{"type": "lead", "id": lead["id"], "hidden": False}]
        cancelled = await calendar.delete(
            path, params={"occurrence": "2030-03-18T09:00:00Z"}, headers=rep.headers
        )
        assert cancelled.status_code == 204, cancelled.text
        items = await eventually(
            lambda: meetings(timeline, rep, lead["id"]),
            until=lambda found: len(found) == 3,
        )
    shown = {(item["occurred_at"], item["title"], item["status"]): item for item in items}
    assert set(shown) == {
        ("2030-03-04T09:00:00Z", "Acme weekly", "confirmed"),
        ("2030-03-12T14:00:00Z", "Acme weekly (Tuesday)", "confirmed"),
        ("2030-03-18T09:00:00Z", "Acme weekly", "cancelled"),
    }
    whole = shown[("2030-03-04T09:00:00Z", "Acme weekly", "confirmed")]["series"]
    assert whole == {
        "rule": ["RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=4"],
        "time_zone": "Europe/Paris",
        "all_day": False,
        "next_occurrence": "2030-03-04T09:00:00Z",
    }
    assert [item["series"] for item in items].count(None) == 2


async def holders_of_item(database_url: str, item_id: str) -> dict[str, bool]:
    """One item's copies: the holder's user → live."""
    connection = await connect_raw(database_url)
    try:
        rows = await connection.fetch(
            "SELECT owner_id, held FROM timeline.holders WHERE item_id = $1::uuid", item_id
        )
    finally:
        await connection.close()
    return {row["owner_id"]: row["held"] for row in rows}


async def holders_of(database_url: str, org_id: str) -> dict[str, tuple[str, bool]]:
    """The copies the timeline holds in the org: the holder's user → (item id, live)."""
    connection = await connect_raw(database_url)
    try:
        rows = await connection.fetch(
            "SELECT owner_id, item_id::text AS item, held FROM timeline.holders "
            "WHERE org_id = $1 AND source_key LIKE 'calendar:%'",
            org_id,
        )
    finally:
        await connection.close()
    return {row["owner_id"]: (row["item"], row["held"]) for row in rows}


async def test_a_meeting_with_a_teammate_is_one_item_held_by_both_until_the_organizer_cancels(
    google: GoogleStack,
    timeline_app: OpenService,
    users: Users,
    service_env: dict[str, str],
    database_url: str,
) -> None:
    """The teammate's copy (Google puts one in an invited user's calendar) is found by the sync
    of their calendar and joins the organizer's item; their removing it leaves the meeting to the
    organizer; the organizer cancelling it (every copy) shows it cancelled."""
    rep, teammate = users.make(Role.REP, teams=["t1"]), users.make(Role.REP, teams=["t1"])
    for user in (rep, teammate):
        await google.connect(user, ["calendar"])
    async with pipeline(timeline_app, service_env) as running:
        crm, calendar, timeline = running.crm, running.calendar, running.timeline
        buyer = await crm.post(
            "/api/contacts",
            json={"name": "Bea Buyer", "emails": ["buyer@acme.example"]},
            headers=rep.headers,
        )
        assert buyer.status_code == 201, buyer.text
        # The buyer's lead: each copy of a meeting with the buyer attaches to it.
        lead = (
            await crm.post(
                "/api/leads",
                json={"title": "Acme", "contact_ids": [buyer.json()["id"]]},
                headers=rep.headers,
            )
        ).json()["id"]
        for user in (rep, teammate):
            watched = await calendar.post("/api/calendar/watch", headers=user.headers)
            assert watched.status_code == 200, watched.text

        async def meeting(title: str) -> dict[str, Any]:
            answer = await calendar.post(
                "/api/calendar/events",
                json={
                    "title": title,
                    "start": "2030-03-05T10:00:00Z",
                    "end": "2030-03-05T11:00:00Z",
                    "attendees": [teammate.principal.email, "buyer@acme.example"],
                    "links": [{"type": "lead", "id": lead}],
                },
                headers=rep.headers,
            )
            assert answer.status_code == 201, answer.text
            event: dict[str, Any] = answer.json()
            return event

        async def held_by(*live: ActingUser) -> dict[str, tuple[str, bool]]:
            return await eventually(
                lambda: holders_of(database_url, users.org_id),
                until=lambda held: (
                    {user for user, (_, on) in held.items() if on} == {user.sub for user in live}
                    and len(held) == 2
                ),
            )

        async def cancel(user: ActingUser, google_id: str) -> None:
            listed = await calendar.get("/api/calendar/events", headers=user.headers)
            [mirrored] = [e for e in listed.json()["items"] if e["google_id"] == google_id]
            answer = await calendar.delete(
                f"/api/calendar/events/{mirrored['id']}", headers=user.headers
            )
            assert answer.status_code == 204, answer.text

        event = await meeting("Acme kick-off")
        both = await held_by(rep, teammate)
        [item] = await eventually(lambda: meetings(timeline, rep, lead))
        assert {item_id for item_id, _ in both.values()} == {item["id"]}
        assert (item["title"], item["status"]) == ("Acme kick-off", "confirmed")

        await cancel(teammate, event["google_id"])  # off the teammate's calendar only
        await held_by(rep)
        [kept] = await meetings(timeline, rep, lead)
        assert (kept["id"], kept["status"]) == (item["id"], "confirmed")

        await cancel(rep, event["google_id"])
        [cancelled] = await eventually(
            lambda: meetings(timeline, rep, lead),
            until=lambda items: bool(items) and items[0]["status"] == "cancelled",
        )
        assert cancelled["id"] == item["id"]

        # Cancelled by the organizer while the teammate still holds it: Google cancels the
        # teammate's copy too, and the meeting shows cancelled once both copies say so.
        second = await meeting("Acme pricing")
        listed, _ = await eventually(
            lambda: meetings(timeline, rep, lead),
            until=lambda items: (
                [found["title"] for found in items] == ["Acme pricing", "Acme kick-off"]
            ),
        )
        await eventually(
            lambda: holders_of_item(database_url, listed["id"]),
            until=lambda held: held == {rep.sub: True, teammate.sub: True},
        )
        await cancel(rep, second["google_id"])
        pricing, _ = await eventually(
            lambda: meetings(timeline, rep, lead),
            until=lambda items: [found["status"] for found in items] == ["cancelled", "cancelled"],
        )
        assert (pricing["id"], pricing["title"]) == (listed["id"], "Acme pricing")
        copies = await holders_of_item(database_url, pricing["id"])
        assert copies == {rep.sub: False, teammate.sub: False}
