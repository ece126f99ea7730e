"""The emulated Calendar API, driven by the real google-api-python-client over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import googleapiclient
import httpx
import pytest
from fastapi import FastAPI, Request, Response
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from google_emulator import calendar
from google_emulator.core import Emulator, GoogleError
from google_emulator.fidelity import check_response
from pipedesk_testkit.servers import serve_in_thread

os.environ["NO_GCE_CHECK"] = "True"

AUTH = "https://www.googleapis.com/auth/"
CALENDAR_SCOPES = (AUTH + "calendar",)
TASKS_SCOPES = (AUTH + "tasks",)
ALICE = "alice@example.com"
BOB = "bob@example.com"
DISCOVERY = (
    Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "calendar.v3.json"
)


@dataclass
class Served:
    url: str
    emulator: Emulator
    services: list[Any] = field(default_factory=list)

    def service(self, email: str = ALICE, scopes: tuple[str, ...] = CALENDAR_SCOPES) -> Any:
        token = self.emulator.issue_access_token(email, scopes).token
        document = json.loads(DISCOVERY.read_text())
        document["rootUrl"] = self.url + "/"
        service = build_from_document(document, credentials=Credentials(token))  # type: ignore[no-untyped-call]
        self.services.append(service)  # closed at teardown: httplib2 leaves sockets open
        return service

    def close(self) -> None:
        for service in self.services:
            service.close()

    def channels(self) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/_emulator/calendar/channels")
        answer.raise_for_status()
        result: list[dict[str, Any]] = answer.json()["channels"]
        return result

    def notifications_in_flight(self) -> int:
        """Notifications queued or being delivered. Which channels a change notifies is decided
        while the change is answered, so once this is 0 every notification it caused arrived."""
        return len(calendar.state_of(self.emulator).deliveries.tasks)

    def deliveries(self) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/_emulator/calendar/deliveries")
        answer.raise_for_status()
        result: list[dict[str, Any]] = answer.json()["deliveries"]
        return result


@dataclass
class Receiver:
    url: str
    received: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> list[dict[str, str]]:
        with self.lock:
            return list(self.received)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


class SchemaCheck:
    """ASGI middleware: every JSON 2xx answer of a named API method must match its discovery
    response schema (what the full emulator app checks too)."""

    def __init__(self, app: ASGIApp, problems: list[str]) -> None:
        self.app = app
        self.problems = problems

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0
        chunks: list[bytes] = []

        async def inspect(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                api_method = scope.get("state", {}).get("api_method")
                body = b"".join(chunks)
                if not message.get("more_body") and api_method and 200 <= status < 300 and body:
                    self.problems.extend(check_response(api_method, json.loads(body)))
            await send(message)

        await self.app(scope, receive, inspect)


def google_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GoogleError)
    return exc.response()


@pytest.fixture
def served() -> Iterator[Served]:
    app = FastAPI()
    app.state.emulator = Emulator()
    app.include_router(calendar.router)
    app.add_exception_handler(GoogleError, google_error)
    problems: list[str] = []
    app.add_middleware(SchemaCheck, problems=problems)
    with serve_in_thread(app) as url:
        served = Served(url, app.state.emulator)
        try:
            yield served
        finally:
            served.close()
    assert problems == []


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    app = FastAPI()
    holder: list[Receiver] = []

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        body = await request.body()
        headers = {
            k.lower(): v for k, v in request.headers.items() if k.lower().startswith("x-goog")
        }
        headers["body-length"] = str(len(body))
        with holder[0].lock:
            holder[0].received.append(headers)
        return Response(status_code=200)

    with serve_in_thread(app) as url:
        holder.append(Receiver(url + "/hook"))
        yield holder[0]


def timed(start: str, end: str) -> dict[str, Any]:
    return {"start": {"dateTime": start}, "end": {"dateTime": end}}


def status_of(error: HttpError) -> tuple[int, str]:
    details = json.loads(error.content)["error"]
    return details["code"], details["errors"][0]["reason"]


def test_calendar_list_has_the_primary_and_seeded_calendars(served: Served) -> None:
    created = httpx.post(
        f"{served.url}/_emulator/calendar/{ALICE}/calendars",
        json={"id": "team@group.calendar.google.com", "summary": "Team"},
    )
    assert created.status_code == 200
    items = served.service().calendarList().list().execute()["items"]
    assert items[0] == {
        "kind": "calendar#calendarListEntry",
        "etag": items[0]["etag"],
        "id": ALICE,
        "summary": ALICE,
        "timeZone": "UTC",
        "accessRole": "owner",
        "selected": True,
        "defaultReminders": [],
        "primary": True,
    }
    assert items[1]["id"] == "team@group.calendar.google.com"
    assert items[1]["summary"] == "Team"
    assert "primary" not in items[1]
    bob_items = served.service(BOB).calendarList().list().execute()["items"]
    assert [item["id"] for item in bob_items] == [BOB]


def test_insert_with_client_id_and_meet_then_get_patch_update_delete(served: Served) -> None:
    service = served.service()
    body = {
        "id": "crm0deal0meeting01",
        "summary": "Kickoff",
        "location": "Room 1",
        **timed("2030-01-07T10:00:00+01:00", "2030-01-07T11:00:00+01:00"),
        "attendees": [{"email": "Carol@Example.com", "displayName": "Carol", "optional": True}],
        "conferenceData": {
            "createRequest": {
                "requestId": "req-1",
                "conferenceSolutionKey": {"type": "hangoutsMeet"},
            }
        },
        "extendedProperties": {"private": {"dealId": "42"}},
    }
    event = (
        service.events().insert(calendarId="primary", body=body, conferenceDataVersion=1).execute()
    )
    assert event["id"] == "crm0deal0meeting01"
    assert event["kind"] == "calendar#event"
    assert event["status"] == "confirmed"
    assert event["organizer"] == {"email": ALICE, "self": True}
    assert event["creator"] == {"email": ALICE, "self": True}
    assert event["start"] == {"dateTime": "2030-01-07T10:00:00+01:00"}
    assert event["attendees"] == [
        {
            "email": "carol@example.com",
            "displayName": "Carol",
            "optional": True,
            "responseStatus": "needsAction",
        }
    ]
    conference = event["conferenceData"]
    assert conference["conferenceSolution"]["key"] == {"type": "hangoutsMeet"}
    assert conference["conferenceSolution"]["name"] == "Google Meet"
    assert conference["createRequest"]["status"] == {"statusCode": "success"}
    entry = conference["entryPoints"][0]
    assert entry["entryPointType"] == "video"
    assert entry["uri"] == f"https://meet.google.com/{conference['conferenceId']}"
    assert entry["label"] == f"meet.google.com/{conference['conferenceId']}"
    assert event["hangoutLink"] == entry["uri"]
    assert event["etag"].startswith('"')
    assert event["etag"].endswith('"')
    assert event["iCalUID"] == "crm0deal0meeting01@google.com"
    assert event["sequence"] == 0
    assert event["eventType"] == "default"
    assert event["reminders"] == {"useDefault": True}

    with pytest.raises(HttpError) as duplicate:
        service.events().insert(calendarId="primary", body=body).execute()
    assert status_of(duplicate.value) == (409, "duplicate")
    with pytest.raises(HttpError) as invalid:
        service.events().insert(calendarId="primary", body={**body, "id": "Bad_ID!"}).execute()
    assert status_of(invalid.value) == (400, "invalid")

    fetched = service.events().get(calendarId=ALICE, eventId=event["id"]).execute()
    assert fetched == event

    patched = (
        service.events()
        .patch(calendarId="primary", eventId=event["id"], body={"summary": "Kickoff v2"})
        .execute()
    )
    assert patched["summary"] == "Kickoff v2"
    assert patched["location"] == "Room 1"
    assert patched["hangoutLink"] == event["hangoutLink"]
    assert patched["etag"] != event["etag"]
    assert patched["sequence"] == 1

    replaced = (
        service.events()
        .update(
            calendarId="primary",
            eventId=event["id"],
            body={"summary": "Replaced", **timed("2030-01-08T09:00:00Z", "2030-01-08T09:30:00Z")},
        )
        .execute()
    )
    assert replaced["summary"] == "Replaced"
    assert "location" not in replaced
    assert "attendees" not in replaced
    assert replaced["etag"] != patched["etag"]

    service.events().delete(calendarId="primary", eventId=event["id"]).execute()
    cancelled = service.events().get(calendarId="primary", eventId=event["id"]).execute()
    assert cancelled["status"] == "cancelled"
    listed = service.events().list(calendarId="primary").execute()["items"]
    assert listed == []
    with_deleted = service.events().list(calendarId="primary", showDeleted=True).execute()["items"]
    assert [item["id"] for item in with_deleted] == [event["id"]]
    with pytest.raises(HttpError) as missing:
        service.events().get(calendarId="primary", eventId="nosuchevent").execute()
    assert status_of(missing.value) == (404, "notFound")


def test_paging_full_sync_then_incremental_sync(served: Served) -> None:
    service = served.service()
    ids = []
    for day in range(1, 6):
        event = (
            service.events()
            .insert(
                calendarId="primary",
                body={
                    "summary": f"Day {day}",
                    **timed(f"2030-02-0{day}T10:00:00Z", f"2030-02-0{day}T11:00:00Z"),
                },
            )
            .execute()
        )
        ids.append(event["id"])

    seen: list[str] = []
    pages = 0
    request_kwargs: dict[str, Any] = {"calendarId": "primary", "maxResults": 2}
    page_token: str | None = None
    while True:
        page = service.events().list(**request_kwargs, pageToken=page_token).execute()
        pages += 1
        seen.extend(item["id"] for item in page["items"])
        page_token = page.get("nextPageToken")
        if page_token is None:
            sync_token = page["nextSyncToken"]
            break
        assert "nextSyncToken" not in page
    assert pages == 3
    assert seen == ids

    unchanged = service.events().list(calendarId="primary", syncToken=sync_token).execute()
    assert unchanged["items"] == []

    added = (
        service.events()
        .insert(
            calendarId="primary",
            body={"summary": "New", **timed("2030-03-01T10:00:00Z", "2030-03-01T11:00:00Z")},
        )
        .execute()
    )
    service.events().patch(
        calendarId="primary", eventId=ids[0], body={"summary": "Changed"}
    ).execute()
    service.events().delete(calendarId="primary", eventId=ids[1]).execute()

    changes = service.events().list(calendarId="primary", syncToken=sync_token).execute()
    by_id = {item["id"]: item for item in changes["items"]}
    assert set(by_id) == {added["id"], ids[0], ids[1]}
    assert by_id[ids[0]]["summary"] == "Changed"
    assert by_id[ids[1]]["status"] == "cancelled"
    next_token = changes["nextSyncToken"]
    assert (
        service.events().list(calendarId="primary", syncToken=next_token).execute()["items"] == []
    )

    with pytest.raises(HttpError) as combined:
        service.events().list(calendarId="primary", syncToken=next_token, q="New").execute()
    assert combined.value.resp.status == 400

    invalidated = httpx.post(f"{served.url}/_emulator/calendar/{ALICE}/invalidate-sync-tokens")
    assert invalidated.status_code == 200
    with pytest.raises(HttpError) as gone:
        service.events().list(calendarId="primary", syncToken=next_token).execute()
    assert status_of(gone.value) == (410, "fullSyncRequired")
    with pytest.raises(HttpError) as unknown:
        service.events().list(calendarId="primary", syncToken="not-a-token").execute()
    assert status_of(unknown.value) == (410, "fullSyncRequired")
    fresh = service.events().list(calendarId="primary").execute()
    assert len(fresh["items"]) == 5
    assert (
        service.events()
        .list(calendarId="primary", syncToken=fresh["nextSyncToken"])
        .execute()["items"]
        == []
    )


def test_list_filters_by_time_and_text(served: Served) -> None:
    service = served.service()
    service.events().insert(
        calendarId="primary",
        body={"summary": "Budget review", **timed("2030-04-01T10:00:00Z", "2030-04-01T11:00:00Z")},
    ).execute()
    service.events().insert(
        calendarId="primary",
        body={"summary": "Lunch", **timed("2030-04-02T12:00:00Z", "2030-04-02T13:00:00Z")},
    ).execute()
    window = (
        service.events()
        .list(calendarId="primary", timeMin="2030-04-02T00:00:00Z", timeMax="2030-04-03T00:00:00Z")
        .execute()
    )
    assert [item["summary"] for item in window["items"]] == ["Lunch"]
    found = service.events().list(calendarId="primary", q="budget").execute()
    assert [item["summary"] for item in found["items"]] == ["Budget review"]


def test_single_events_expands_a_weekly_rule(served: Served) -> None:
    service = served.service()
    master = (
        service.events()
        .insert(
            calendarId="primary",
            body={
                "summary": "Weekly sync",
                "start": {"dateTime": "2030-01-07T09:00:00", "timeZone": "Europe/Berlin"},
                "end": {"dateTime": "2030-01-07T09:30:00", "timeZone": "Europe/Berlin"},
                "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=3"],
            },
        )
        .execute()
    )
    service.events().insert(
        calendarId="primary",
        body={"summary": "One-off", **timed("2030-01-10T08:00:00Z", "2030-01-10T08:30:00Z")},
    ).execute()
    masters = service.events().list(calendarId="primary").execute()["items"]
    assert masters[0]["recurrence"] == ["RRULE:FREQ=WEEKLY;COUNT=3"]
    items = (
        service.events()
        .list(calendarId="primary", singleEvents=True, orderBy="startTime")
        .execute()["items"]
    )
    assert [item["summary"] for item in items] == [
        "Weekly sync",
        "One-off",
        "Weekly sync",
        "Weekly sync",
    ]
    instances = [item for item in items if item.get("recurringEventId") == master["id"]]
    assert [item["start"]["dateTime"] for item in instances] == [
        "2030-01-07T09:00:00+01:00",
        "2030-01-14T09:00:00+01:00",
        "2030-01-21T09:00:00+01:00",
    ]
    assert instances[1]["id"] == f"{master['id']}_20300114T080000Z"
    assert instances[1]["originalStartTime"] == instances[1]["start"]
    assert "recurrence" not in instances[1]
    fetched = service.events().get(calendarId="primary", eventId=instances[1]["id"]).execute()
    assert fetched["recurringEventId"] == master["id"]
    windowed = (
        service.events()
        .list(
            calendarId="primary",
            singleEvents=True,
            timeMin="2030-01-13T00:00:00Z",
            timeMax="2030-01-20T00:00:00Z",
        )
        .execute()["items"]
    )
    assert [item["id"] for item in windowed] == [instances[1]["id"]]
    with pytest.raises(HttpError) as unordered:
        service.events().list(calendarId="primary", orderBy="startTime").execute()
    assert unordered.value.resp.status == 400


def test_a_series_expands_its_rule_and_keeps_instances_changed_on_their_own(
    served: Served,
) -> None:
    service = served.service()
    events = service.events()
    series = events.insert(
        calendarId="primary",
        body={
            "summary": "Stand-up",
            "start": {"dateTime": "2030-03-25T09:00:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2030-03-25T09:15:00", "timeZone": "Europe/Berlin"},
            "recurrence": [
                "RRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=6",
                "EXDATE;TZID=Europe/Berlin:20300327T090000",
            ],
        },
    ).execute()
    instances = events.instances(calendarId="primary", eventId=series["id"]).execute()["items"]
    # Wall-clock time is kept across the change to summer time (31 March in Berlin).
    assert [i["start"]["dateTime"] for i in instances] == [
        "2030-03-25T09:00:00+01:00",
        "2030-04-01T09:00:00+02:00",
        "2030-04-03T09:00:00+02:00",
        "2030-04-08T09:00:00+02:00",
        "2030-04-10T09:00:00+02:00",
    ]
    moved_id, cancelled_id = instances[1]["id"], instances[2]["id"]
    assert moved_id == f"{series['id']}_20300401T070000Z"
    moved = events.patch(
        calendarId="primary",
        eventId=moved_id,
        body={
            "start": {"dateTime": "2030-04-01T15:00:00+02:00"},
            "end": {"dateTime": "2030-04-01T15:15:00+02:00"},
        },
    ).execute()
    assert moved["recurringEventId"] == series["id"]
    assert moved["originalStartTime"]["dateTime"] == "2030-04-01T09:00:00+02:00"
    assert moved["iCalUID"] == series["iCalUID"]
    events.delete(calendarId="primary", eventId=cancelled_id).execute()

    # Unexpanded (as a sync lists): the series, the moved instance and the cancelled one.
    listed = {i["id"]: i for i in events.list(calendarId="primary").execute()["items"]}
    assert set(listed) == {series["id"], moved_id, cancelled_id}
    assert listed[cancelled_id]["status"] == "cancelled"
    assert listed[cancelled_id]["recurringEventId"] == series["id"]
    expanded = events.list(calendarId="primary", singleEvents=True, orderBy="startTime").execute()
    assert [(i["id"], i["start"]["dateTime"]) for i in expanded["items"]][:3] == [
        (instances[0]["id"], "2030-03-25T09:00:00+01:00"),
        (moved_id, "2030-04-01T15:00:00+02:00"),
        (instances[3]["id"], "2030-04-08T09:00:00+02:00"),
    ]
    again = events.instances(calendarId="primary", eventId=series["id"]).execute()["items"]
    assert [i["id"] for i in again] == [i["id"] for i in instances if i["id"] != cancelled_id]
    picked = events.instances(
        calendarId="primary", eventId=series["id"], originalStart="2030-04-01T09:00:00+02:00"
    ).execute()["items"]
    assert [i["start"]["dateTime"] for i in picked] == ["2030-04-01T15:00:00+02:00"]

    # Changing the series leaves its exceptions; cancelling it cancels them too.
    renamed = events.patch(
        calendarId="primary", eventId=series["id"], body={"summary": "Daily"}
    ).execute()
    assert renamed["recurrence"] == series["recurrence"]
    assert events.get(calendarId="primary", eventId=instances[3]["id"]).execute()["summary"] == (
        "Daily"
    )
    events.delete(calendarId="primary", eventId=series["id"]).execute()
    assert events.get(calendarId="primary", eventId=moved_id).execute()["status"] == "cancelled"


@pytest.mark.parametrize(
    "recurrence",
    [
        ["RRULE:FREQ=SOMETIMES"],
        ["RRULE:FREQ=WEEKLY;BYDAY=XX"],
        ["RRULE:FREQ=WEEKLY;UNTIL=20300401T000000"],
        ["RRULE:FREQ=WEEKLY;COUNT=2;UNTIL=20300401T000000Z"],
        ["EXDATE:20300401T090000Z"],
        ["RRULE:FREQ=WEEKLY", "RRULE:FREQ=DAILY"],
    ],
)
def test_a_malformed_recurrence_is_refused(served: Served, recurrence: list[str]) -> None:
    with pytest.raises(HttpError) as refused:
        served.service().events().insert(
            calendarId="primary",
            body={
                **timed("2030-03-25T09:00:00Z", "2030-03-25T09:30:00Z"),
                "recurrence": recurrence,
            },
        ).execute()
    assert refused.value.resp.status == 400


def test_freebusy_reports_opaque_confirmed_events(served: Served) -> None:
    service = served.service()
    service.events().insert(
        calendarId="primary",
        body={"summary": "A", **timed("2030-05-01T09:00:00Z", "2030-05-01T10:00:00Z")},
    ).execute()
    service.events().insert(
        calendarId="primary",
        body={"summary": "B", **timed("2030-05-01T09:30:00Z", "2030-05-01T11:00:00Z")},
    ).execute()
    service.events().insert(
        calendarId="primary",
        body={
            "summary": "Free",
            "transparency": "transparent",
            **timed("2030-05-01T13:00:00Z", "2030-05-01T14:00:00Z"),
        },
    ).execute()
    gone = (
        service.events()
        .insert(
            calendarId="primary",
            body={"summary": "Gone", **timed("2030-05-01T15:00:00Z", "2030-05-01T16:00:00Z")},
        )
        .execute()
    )
    service.events().delete(calendarId="primary", eventId=gone["id"]).execute()
    answer = (
        service.freebusy()
        .query(
            body={
                "timeMin": "2030-05-01T00:00:00Z",
                "timeMax": "2030-05-02T00:00:00Z",
                "items": [{"id": "primary"}, {"id": "nobody@example.com"}],
            }
        )
        .execute()
    )
    assert answer["calendars"]["primary"] == {
        "busy": [{"start": "2030-05-01T09:00:00.000Z", "end": "2030-05-01T11:00:00.000Z"}]
    }
    assert answer["calendars"]["nobody@example.com"]["errors"][0]["reason"] == "notFound"
    with pytest.raises(HttpError) as backwards:
        service.freebusy().query(
            body={"timeMin": "2030-05-02T00:00:00Z", "timeMax": "2030-05-01T00:00:00Z", "items": []}
        ).execute()
    assert backwards.value.resp.status == 400


def test_bad_times_and_scopes_are_rejected(served: Served) -> None:
    service = served.service()
    with pytest.raises(HttpError) as backwards:
        service.events().insert(
            calendarId="primary",
            body={"summary": "x", **timed("2030-01-01T10:00:00Z", "2030-01-01T09:00:00Z")},
        ).execute()
    assert status_of(backwards.value) == (400, "timeRangeEmpty")
    with pytest.raises(HttpError) as no_end:
        service.events().insert(
            calendarId="primary",
            body={"summary": "x", "start": {"dateTime": "2030-01-01T10:00:00Z"}},
        ).execute()
    assert status_of(no_end.value) == (400, "required")
    with pytest.raises(HttpError) as window:
        service.events().list(
            calendarId="primary", timeMin="2030-01-02T00:00:00Z", timeMax="2030-01-01T00:00:00Z"
        ).execute()
    assert window.value.resp.status == 400
    tasks_only = served.service(scopes=TASKS_SCOPES)
    with pytest.raises(HttpError) as forbidden:
        tasks_only.events().list(calendarId="primary").execute()
    assert status_of(forbidden.value) == (403, "insufficientPermissions")
    with pytest.raises(HttpError) as foreign:
        service.events().list(calendarId=BOB).execute()
    assert foreign.value.resp.status == 404


def test_each_method_accepts_the_scopes_its_discovery_document_lists(served: Served) -> None:
    """calendarList and freebusy.query do not accept calendar.events, as at Google."""
    body = {"timeMin": "2030-01-01T00:00:00Z", "timeMax": "2030-01-02T00:00:00Z", "items": []}
    events_only = served.service(scopes=(AUTH + "calendar.events",))
    assert events_only.events().list(calendarId="primary").execute()["kind"] == "calendar#events"
    for refused in (
        events_only.calendarList().list(),
        events_only.calendarList().get(calendarId="primary"),
        events_only.freebusy().query(body=body),
    ):
        with pytest.raises(HttpError) as caught:
            refused.execute()
        assert status_of(caught.value) == (403, "insufficientPermissions")
    narrow = served.service(
        scopes=(AUTH + "calendar.calendarlist.readonly", AUTH + "calendar.freebusy")
    )
    assert narrow.calendarList().list().execute()["items"][0]["id"] == ALICE
    assert narrow.freebusy().query(body=body).execute()["kind"] == "calendar#freeBusy"
    with pytest.raises(HttpError) as reading_events:
        narrow.events().list(calendarId="primary").execute()
    assert status_of(reading_events.value) == (403, "insufficientPermissions")


def test_move_cancels_in_source_and_appears_in_destination(served: Served) -> None:
    httpx.post(
        f"{served.url}/_emulator/calendar/{ALICE}/calendars",
        json={"id": "team@group.calendar.google.com", "summary": "Team"},
    ).raise_for_status()
    service = served.service()
    event = (
        service.events()
        .insert(
            calendarId="primary",
            body={"summary": "Move me", **timed("2030-06-01T10:00:00Z", "2030-06-01T11:00:00Z")},
        )
        .execute()
    )
    moved = (
        service.events()
        .move(
            calendarId="primary", eventId=event["id"], destination="team@group.calendar.google.com"
        )
        .execute()
    )
    assert moved["id"] == event["id"]
    assert moved["organizer"]["email"] == "team@group.calendar.google.com"
    source = service.events().list(calendarId="primary", showDeleted=True).execute()["items"]
    assert [(item["id"], item["status"]) for item in source] == [(event["id"], "cancelled")]
    destination = (
        service.events().list(calendarId="team@group.calendar.google.com").execute()["items"]
    )
    assert [item["id"] for item in destination] == [event["id"]]


def test_an_invited_user_holds_a_copy_that_follows_the_organizers_event(
    served: Served, receiver: Receiver
) -> None:
    alice, bob = served.service(ALICE), served.service(BOB)
    bob.calendarList().list().execute()  # Bob has used Google: he is a user here
    start = bob.events().list(calendarId="primary").execute()["nextSyncToken"]
    bob.events().watch(
        calendarId="primary", body={"id": "bob-1", "type": "web_hook", "address": receiver.url}
    ).execute()
    event = (
        alice.events()
        .insert(
            calendarId="primary",
            body={
                "summary": "Acme kick-off",
                "attendees": [{"email": BOB}, {"email": "carol@elsewhere.example"}],
                **timed("2030-05-01T10:00:00Z", "2030-05-01T11:00:00Z"),
            },
        )
        .execute()
    )
    copy = bob.events().get(calendarId="primary", eventId=event["id"]).execute()
    assert (copy["id"], copy["iCalUID"], copy["summary"], copy["status"]) == (
        event["id"],
        event["iCalUID"],
        "Acme kick-off",
        "confirmed",
    )
    assert copy["organizer"] == {"email": ALICE}
    assert [a for a in copy["attendees"] if a.get("self")] == [
        {"email": BOB, "responseStatus": "needsAction", "self": True}
    ]
    assert copy["htmlLink"] != event["htmlLink"]  # Bob's calendar's page of it
    assert "carol@elsewhere.example" not in calendar.state_of(served.emulator).user_calendars
    wait_for(
        lambda: [h["x-goog-resource-state"] for h in receiver.snapshot()] == ["sync", "exists"]
    )

    alice.events().patch(
        calendarId="primary", eventId=event["id"], body={"summary": "Acme kick-off (moved)"}
    ).execute()
    changes = bob.events().list(calendarId="primary", syncToken=start).execute()
    assert [(item["id"], item["summary"]) for item in changes["items"]] == [
        (event["id"], "Acme kick-off (moved)")
    ]
    # Bob deletes his copy: only his; Alice's later changes do not put it back.
    bob.events().delete(calendarId="primary", eventId=event["id"]).execute()
    assert alice.events().get(calendarId="primary", eventId=event["id"]).execute()["status"] == (
        "confirmed"
    )
    alice.events().patch(
        calendarId="primary", eventId=event["id"], body={"summary": "Without Bob"}
    ).execute()
    removed = bob.events().get(calendarId="primary", eventId=event["id"]).execute()
    assert (removed["status"], removed["summary"]) == ("cancelled", "Acme kick-off (moved)")


def test_the_organizer_cancelling_or_uninviting_cancels_the_attendees_copy(
    served: Served,
) -> None:
    alice, bob = served.service(ALICE), served.service(BOB)
    bob.calendarList().list().execute()
    invited = {
        "attendees": [{"email": BOB}],
        **timed("2030-05-02T10:00:00Z", "2030-05-02T11:00:00Z"),
    }
    cancelled = alice.events().insert(calendarId="primary", body=invited).execute()
    uninvited = alice.events().insert(calendarId="primary", body=invited).execute()
    alice.events().delete(calendarId="primary", eventId=cancelled["id"]).execute()
    alice.events().patch(
        calendarId="primary", eventId=uninvited["id"], body={"attendees": []}
    ).execute()
    copies = bob.events().list(calendarId="primary", showDeleted=True).execute()["items"]
    assert sorted((item["id"], item["status"]) for item in copies) == sorted(
        [(cancelled["id"], "cancelled"), (uninvited["id"], "cancelled")]
    )
    # Invited again: the copy is back.
    alice.events().patch(
        calendarId="primary", eventId=uninvited["id"], body={"attendees": [{"email": BOB}]}
    ).execute()
    again = bob.events().get(calendarId="primary", eventId=uninvited["id"]).execute()
    assert again["status"] == "confirmed"
    # An attendee's own change stays in their copy.
    bob.events().patch(
        calendarId="primary", eventId=uninvited["id"], body={"colorId": "5"}
    ).execute()
    assert (
        "colorId" not in alice.events().get(calendarId="primary", eventId=uninvited["id"]).execute()
    )


def test_push_channels_deliver_sync_and_exists(served: Served, receiver: Receiver) -> None:
    service = served.service()
    channel = (
        service.events()
        .watch(
            calendarId="primary",
            body={
                "id": "channel-1",
                "type": "web_hook",
                "address": receiver.url,
                "token": "secret-1",
            },
        )
        .execute()
    )
    assert channel["kind"] == "api#channel"
    assert channel["id"] == "channel-1"
    assert channel["token"] == "secret-1"
    expiration_ms = int(channel["expiration"])
    expected_expiry = served.emulator.clock.now() + timedelta(days=7)
    assert abs(expiration_ms / 1000 - expected_expiry.timestamp()) < 60
    wait_for(lambda: len(receiver.snapshot()) == 1)

    event = (
        service.events()
        .insert(
            calendarId="primary",
            body={"summary": "Ping", **timed("2030-07-01T10:00:00Z", "2030-07-01T11:00:00Z")},
        )
        .execute()
    )
    wait_for(lambda: len(receiver.snapshot()) == 2)
    seeded = httpx.post(
        f"{served.url}/_emulator/calendar/{ALICE}/events",
        json={
            "as": BOB,
            "summary": "From Bob",
            **timed("2030-07-02T10:00:00Z", "2030-07-02T11:00:00Z"),
        },
    )
    assert seeded.status_code == 200
    assert seeded.json()["organizer"] == {"email": BOB}
    assert {a["email"] for a in seeded.json()["attendees"]} == {ALICE, BOB}
    httpx.patch(
        f"{served.url}/_emulator/calendar/{ALICE}/events/{seeded.json()['id']}",
        json={"summary": "Moved by Bob"},
    ).raise_for_status()
    assert (
        httpx.delete(f"{served.url}/_emulator/calendar/{ALICE}/events/{event['id']}").status_code
        == 204
    )
    wait_for(lambda: len(receiver.snapshot()) == 5)

    received = receiver.snapshot()
    assert [h["x-goog-resource-state"] for h in received] == [
        "sync",
        "exists",
        "exists",
        "exists",
        "exists",
    ]
    assert [h["x-goog-message-number"] for h in received] == ["1", "2", "3", "4", "5"]
    for headers in received:
        assert headers["x-goog-channel-id"] == "channel-1"
        assert headers["x-goog-channel-token"] == "secret-1"
        assert headers["x-goog-resource-id"] == channel["resourceId"]
        assert headers["x-goog-resource-uri"] == channel["resourceUri"]
        assert (
            parsedate_to_datetime(headers["x-goog-channel-expiration"]).timestamp()
            == expiration_ms // 1000
        )
        assert headers["body-length"] == "0"
    wait_for(lambda: len(served.deliveries()) == 5)
    assert [(d["state"], d["number"], d["status_code"]) for d in served.deliveries()] == [
        ("sync", 1, 200),
        ("exists", 2, 200),
        ("exists", 3, 200),
        ("exists", 4, 200),
        ("exists", 5, 200),
    ]

    service.channels().stop(body={"id": "channel-1", "resourceId": channel["resourceId"]}).execute()
    with pytest.raises(HttpError) as unknown:
        service.channels().stop(
            body={"id": "channel-1", "resourceId": channel["resourceId"]}
        ).execute()
    assert unknown.value.resp.status == 404
    service.events().insert(
        calendarId="primary",
        body={"summary": "Quiet", **timed("2030-07-03T10:00:00Z", "2030-07-03T11:00:00Z")},
    ).execute()
    wait_for(lambda: served.notifications_in_flight() == 0)
    assert len(receiver.snapshot()) == 5


def test_expired_channel_receives_nothing(served: Served, receiver: Receiver) -> None:
    service = served.service()
    service.events().watch(
        calendarId="primary",
        body={
            "id": "short",
            "type": "web_hook",
            "address": receiver.url,
            "params": {"ttl": "3600"},
        },
    ).execute()
    wait_for(lambda: len(receiver.snapshot()) == 1)
    assert "x-goog-channel-token" not in receiver.snapshot()[0]
    served.emulator.clock.offset += timedelta(hours=2)
    later = served.service()
    later.events().insert(
        calendarId="primary",
        body={"summary": "Late", **timed("2030-08-01T10:00:00Z", "2030-08-01T11:00:00Z")},
    ).execute()
    httpx.post(
        f"{served.url}/_emulator/calendar/{ALICE}/events",
        json={
            "as": BOB,
            "summary": "Late seed",
            **timed("2030-08-02T10:00:00Z", "2030-08-02T11:00:00Z"),
        },
    ).raise_for_status()
    wait_for(lambda: served.notifications_in_flight() == 0)
    assert len(receiver.snapshot()) == 1
    assert len(served.deliveries()) == 1


def test_an_incremental_listing_continues_with_its_sync_token_and_page_tokens(
    served: Served,
) -> None:
    service = served.service()
    for day in range(1, 4):
        body = {
            "summary": f"Old {day}",
            **timed(f"2030-04-0{day}T10:00:00Z", f"2030-04-0{day}T11:00:00Z"),
        }
        service.events().insert(calendarId="primary", body=body).execute()
    sync_token = service.events().list(calendarId="primary").execute()["nextSyncToken"]
    for day in range(4, 7):
        body = {
            "summary": f"New {day}",
            **timed(f"2030-04-0{day}T10:00:00Z", f"2030-04-0{day}T11:00:00Z"),
        }
        service.events().insert(calendarId="primary", body=body).execute()
    first = (
        service.events().list(calendarId="primary", syncToken=sync_token, maxResults=2).execute()
    )
    rest = (
        service.events()
        .list(
            calendarId="primary",
            syncToken=sync_token,
            pageToken=first["nextPageToken"],
            maxResults=2,
        )
        .execute()
    )
    assert [e["summary"] for e in first["items"] + rest["items"]] == ["New 4", "New 5", "New 6"]
    assert "nextSyncToken" in rest
    # The page token with other parameters than its first page's: refused, as undefined.
    for other in (
        {"maxResults": 2},  # the sync token left out
        {"syncToken": sync_token, "maxResults": 3},
        {"syncToken": sync_token, "maxResults": 2, "singleEvents": True},
    ):
        with pytest.raises(HttpError) as refused:
            service.events().list(
                calendarId="primary", pageToken=first["nextPageToken"], **other
            ).execute()
        assert status_of(refused.value) == (400, "invalid")
    with pytest.raises(HttpError) as refused:
        service.events().list(
            calendarId="primary", syncToken=sync_token, showDeleted=False
        ).execute()
    assert status_of(refused.value) == (400, "invalid")


def test_an_event_changed_between_pages_is_never_skipped(served: Served) -> None:
    service = served.service()
    start = service.events().list(calendarId="primary").execute()["nextSyncToken"]
    ids = [
        service.events()
        .insert(
            calendarId="primary",
            body={"summary": f"Event {n}", **timed("2030-04-01T10:00:00Z", "2030-04-01T11:00:00Z")},
        )
        .execute()["id"]
        for n in range(4)
    ]
    listed: list[str] = []
    page_token: str | None = None
    while True:
        page = (
            service.events()
            .list(calendarId="primary", syncToken=start, maxResults=1, pageToken=page_token)
            .execute()
        )
        listed.extend(item["id"] for item in page["items"])
        if not page_token:  # between the first and second page, the first event changes
            service.events().patch(
                calendarId="primary", eventId=ids[0], body={"summary": "Event 0 (moved)"}
            ).execute()
        page_token = page.get("nextPageToken")
        if page_token is None:
            break
    assert listed == ids
    after = service.events().list(calendarId="primary", syncToken=page["nextSyncToken"]).execute()
    assert [(e["id"], e["summary"]) for e in after["items"]] == [(ids[0], "Event 0 (moved)")]


def test_channels_are_listed_with_their_expiry_and_state(
    served: Served, receiver: Receiver
) -> None:
    service = served.service()
    for channel_id in ("kept", "halted"):
        service.events().watch(
            calendarId="primary",
            body={
                "id": channel_id,
                "type": "web_hook",
                "address": receiver.url,
                "params": {"ttl": "3600"},
            },
        ).execute()
    halted = next(c for c in served.channels() if c["id"] == "halted")
    service.channels().stop(body={"id": "halted", "resourceId": halted["resource_id"]}).execute()
    listed = {c["id"]: c for c in served.channels()}
    assert listed["kept"]["stopped"] is False
    assert listed["kept"]["expired"] is False
    assert listed["kept"]["owner"] == ALICE
    assert listed["halted"]["stopped"] is True
    served.emulator.clock.offset += timedelta(hours=2)
    assert all(channel["expired"] for channel in served.channels())


@pytest.mark.asyncio
async def test_client_calls_from_async_code(served: Served) -> None:
    service = served.service()
    body = {"summary": "Async", **timed("2030-09-01T10:00:00Z", "2030-09-01T11:00:00Z")}
    event = await asyncio.to_thread(
        service.events().insert(calendarId="primary", body=body).execute
    )
    listed = await asyncio.to_thread(service.events().list(calendarId="primary").execute)
    assert [item["id"] for item in listed["items"]] == [event["id"]]


def notifications(served: Served, **query: str) -> list[tuple[str, str]]:
    answer = httpx.get(f"{served.url}/_emulator/calendar/notifications", params=query)
    answer.raise_for_status()
    return [(sent["recipient"], sent["kind"]) for sent in answer.json()["notifications"]]


def test_send_updates_records_the_invitations_updates_and_cancellations_google_sends(
    served: Served,
) -> None:
    alice = served.service(ALICE)
    served.service(BOB).calendarList().list().execute()  # Bob uses Google Calendar
    carol, dave = "carol@elsewhere.example", "dave@elsewhere.example"
    body = {
        "summary": "Pitch",
        "attendees": [{"email": BOB}, {"email": carol}],
        **timed("2030-05-01T10:00:00Z", "2030-05-01T11:00:00Z"),
    }
    quiet = alice.events().insert(calendarId="primary", body=body).execute()
    assert notifications(served, event_id=quiet["id"]) == []  # Google's default: none
    event = alice.events().insert(calendarId="primary", body=body, sendUpdates="all").execute()
    assert sorted(notifications(served, event_id=event["id"])) == [
        (BOB, "invitation"),
        (carol, "invitation"),
    ]
    alice.events().patch(
        calendarId="primary",
        eventId=event["id"],
        body={"attendees": [{"email": carol}, {"email": dave}]},
        sendUpdates="externalOnly",
    ).execute()
    # Bob, a Google Calendar user, is dropped without an e-mail under externalOnly.
    assert sorted(notifications(served, event_id=event["id"])[2:]) == [
        (carol, "update"),
        (dave, "invitation"),
    ]
    alice.events().delete(calendarId="primary", eventId=event["id"], sendUpdates="all").execute()
    assert sorted(notifications(served, event_id=event["id"])[4:]) == [
        (carol, "cancellation"),
        (dave, "cancellation"),
    ]
    # The client checks the enum itself; the emulator refuses what it would not send.
    token = served.emulator.issue_access_token(ALICE, CALENDAR_SCOPES).token
    refused = httpx.post(
        f"{served.url}/calendar/v3/calendars/primary/events",
        params={"sendUpdates": "everyone"},
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["errors"][0]["reason"] == "invalid"


def test_only_the_organizer_changes_shared_fields_an_attendee_replies_and_keeps_their_own(
    served: Served,
) -> None:
    alice, bob = served.service(ALICE), served.service(BOB)
    bob.calendarList().list().execute()
    event = (
        alice.events()
        .insert(
            calendarId="primary",
            body={
                "summary": "Pitch",
                "attendees": [{"email": BOB}, {"email": "carol@elsewhere.example"}],
                "extendedProperties": {"shared": {"deal": "7"}},
                **timed("2030-05-03T10:00:00Z", "2030-05-03T11:00:00Z"),
            },
        )
        .execute()
    )
    copy = bob.events().get(calendarId="primary", eventId=event["id"]).execute()
    for shared in (
        {"summary": "Bob's pitch"},
        {
            "start": {"dateTime": "2030-05-03T09:00:00Z"},
            "end": {"dateTime": "2030-05-03T11:00:00Z"},
        },
        {"attendees": [{"email": BOB}]},
        {"extendedProperties": {"shared": {"deal": "8"}}},
    ):
        with pytest.raises(HttpError) as refused:
            bob.events().patch(calendarId="primary", eventId=event["id"], body=shared).execute()
        assert status_of(refused.value) == (403, "forbiddenForNonOrganizer")
        assert json.loads(refused.value.content)["error"]["errors"][0]["domain"] == "calendar"
    reply = [{**a, "responseStatus": "accepted"} if a.get("self") else a for a in copy["attendees"]]
    answered = (
        bob.events()
        .patch(
            calendarId="primary",
            eventId=event["id"],
            body={
                "attendees": reply,
                "reminders": {
                    "useDefault": False,
                    "overrides": [{"method": "popup", "minutes": 5}],
                },
                "extendedProperties": {"private": {"mine": "1"}, "shared": {"deal": "7"}},
            },
        )
        .execute()
    )
    assert [a["responseStatus"] for a in answered["attendees"] if a.get("self")] == ["accepted"]
    assert answered["reminders"]["overrides"] == [{"method": "popup", "minutes": 5}]
    # The reply reaches the organizer; Bob's own settings stay his when Alice changes the event.
    original = alice.events().get(calendarId="primary", eventId=event["id"]).execute()
    assert {a["email"]: a["responseStatus"] for a in original["attendees"]}[BOB] == "accepted"
    assert "private" not in original.get("extendedProperties", {})
    alice.events().patch(
        calendarId="primary", eventId=event["id"], body={"summary": "Pitch v2"}
    ).execute()
    after = bob.events().get(calendarId="primary", eventId=event["id"]).execute()
    assert after["summary"] == "Pitch v2"
    assert after["extendedProperties"] == {"private": {"mine": "1"}, "shared": {"deal": "7"}}
    assert after["reminders"]["overrides"] == [{"method": "popup", "minutes": 5}]


def test_a_meet_may_be_pending_then_succeed_or_fail(served: Served) -> None:
    service = served.service()
    outcome = httpx.post(
        f"{served.url}/_emulator/calendar/{ALICE}/conferences", json={"outcome": "pending"}
    )
    assert outcome.status_code == 200

    def meeting(request_id: str) -> dict[str, Any]:
        body = {
            "summary": "Call",
            "conferenceData": {
                "createRequest": {
                    "requestId": request_id,
                    "conferenceSolutionKey": {"type": "hangoutsMeet"},
                }
            },
            **timed("2030-05-04T10:00:00Z", "2030-05-04T11:00:00Z"),
        }
        event: dict[str, Any] = (
            service.events()
            .insert(calendarId="primary", body=body, conferenceDataVersion=1)
            .execute()
        )
        return event

    first = meeting("req-1")
    assert first["conferenceData"]["createRequest"]["status"] == {"statusCode": "pending"}
    assert "hangoutLink" not in first
    start = service.events().list(calendarId="primary").execute()["nextSyncToken"]
    settled = httpx.post(
        f"{served.url}/_emulator/calendar/{ALICE}/conferences/settle", json={"outcome": "success"}
    )
    assert settled.json() == {"settled": [first["id"]]}
    changed = service.events().list(calendarId="primary", syncToken=start).execute()["items"]
    assert [e["id"] for e in changed] == [first["id"]]
    assert changed[0]["conferenceData"]["createRequest"]["status"] == {"statusCode": "success"}
    assert changed[0]["hangoutLink"].startswith("https://meet.google.com/")

    second = meeting("req-2")
    httpx.post(
        f"{served.url}/_emulator/calendar/{ALICE}/conferences/settle", json={"outcome": "failure"}
    ).raise_for_status()
    failed = service.events().get(calendarId="primary", eventId=second["id"]).execute()
    assert failed["conferenceData"]["createRequest"]["status"] == {"statusCode": "failure"}
    assert "hangoutLink" not in failed


@pytest.mark.parametrize("address", ["carol@example..com", "carol@-example.com", "carol"])
def test_an_attendee_that_is_not_an_email_address_is_refused(served: Served, address: str) -> None:
    service = served.service()
    body = {
        "summary": "Kickoff",
        **timed("2030-01-07T10:00:00+01:00", "2030-01-07T11:00:00+01:00"),
        "attendees": [{"email": address}],
    }
    with pytest.raises(HttpError) as refused:
        service.events().insert(calendarId="primary", body=body).execute()
    assert refused.value.resp.status == 400
    assert refused.value.error_details[0]["reason"] == "invalid"
    assert refused.value.error_details[0]["message"] == "Invalid attendee email."
