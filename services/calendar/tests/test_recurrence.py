"""Series: a recurrence through the API, its occurrences changed or cancelled one by one, and
the mirror keeping the series and its exceptions, against the emulator."""

from typing import Any

import httpx
import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.waiting import eventually

pytestmark = pytest.mark.asyncio

WEEKLY = {
    "summary": "Weekly review",
    "start": "2030-03-04T10:00:00",
    "end": "2030-03-04T11:00:00",
    "timezone": "Europe/Paris",
    "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=4"],
}
# The occurrences, by their original start (Paris is UTC+1 until 30 March, then UTC+2).
MONDAYS = [
    "2030-03-04T09:00:00Z",
    "2030-03-11T09:00:00Z",
    "2030-03-18T09:00:00Z",
    "2030-03-25T09:00:00Z",
]


async def instances(stack: Any, user: ActingUser, series_id: str) -> list[dict[str, Any]]:
    """Google's expansion of the series (``events.instances``, cancelled ones included)."""
    token = await stack.google_token(user, ["https://www.googleapis.com/auth/calendar.readonly"])
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(
            f"{stack.google.emulator_url}/calendar/v3/calendars/primary/events/{series_id}/instances",
            params={"showDeleted": "true"},
            headers={"Authorization": f"Bearer {token}"},
        )
    answer.raise_for_status()
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def calendar_list(stack: Any, user: ActingUser, **params: str) -> list[dict[str, Any]]:
    async with stack.start() as calendar:
        answer = await calendar.client.get(
            "/api/calendar/events", params=params, headers=user.headers
        )
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def test_a_weekly_series_is_made_in_google_with_its_rule_and_expanded(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as calendar:
        created = await calendar.client.post(
            "/api/calendar/events",
            json={**WEEKLY, "recurrence": [*WEEKLY["recurrence"], "EXDATE:20300318T090000Z"]},
            headers=rep.headers,
        )
    assert created.status_code == 201, created.text
    series = created.json()
    assert series["recurrence"] == [
        "RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=4",
        "EXDATE:20300318T090000Z",
    ]
    assert series["recurring_event_id"] is None
    [in_google] = await stack.google_events(rep)
    assert in_google["recurrence"] == series["recurrence"]
    expanded = await instances(stack, rep, series["google_id"])
    assert [i["start"]["dateTime"] for i in expanded] == [
        "2030-03-04T10:00:00+01:00",
        "2030-03-11T10:00:00+01:00",
        "2030-03-25T10:00:00+01:00",
    ]
    assert {i["recurringEventId"] for i in expanded} == {series["google_id"]}


@pytest.mark.parametrize(
    ("recurrence", "field"),
    [
        (["RRULE:FREQ=SOMETIMES"], "body.recurrence.0"),
        (["RRULE:FREQ=WEEKLY;BYDAY=XX"], "body.recurrence.0"),
        (["RRULE:FREQ=WEEKLY;COUNT=2;UNTIL=20300401T000000Z"], "body.recurrence.0"),
        (["RRULE:FREQ=WEEKLY;UNTIL=20300401T000000"], "body.recurrence.0"),
        (["RRULE:FREQ=WEEKLY", "EXDATE:20300311T100000"], "body.recurrence.1"),
        (["RRULE:FREQ=WEEKLY", "EXDATE:2030-03-11"], "body.recurrence.1"),
        (["FREQ=WEEKLY"], "body.recurrence.0"),
        (["EXDATE:20300311T090000Z"], "body.recurrence"),
        (["RRULE:FREQ=WEEKLY", "RRULE:FREQ=DAILY"], "body.recurrence"),
    ],
)
async def test_a_malformed_recurrence_is_a_422_naming_it_before_any_google_call(
    stack: Any, users: Users, recurrence: list[str], field: str
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as calendar:
        refused = await calendar.client.post(
            "/api/calendar/events", json={**WEEKLY, "recurrence": recurrence}, headers=rep.headers
        )
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert [error["field"] for error in refused.json()["errors"]] == [field]
    assert await stack.calls(rep, "calendar.events.insert") == []


async def test_one_occurrence_moved_another_cancelled_and_the_series_changed(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as calendar:
        series = (
            await calendar.client.post("/api/calendar/events", json=WEEKLY, headers=rep.headers)
        ).json()
        path = f"/api/calendar/events/{series['id']}"
        moved = await calendar.client.patch(
            path,
            params={"occurrence": MONDAYS[1]},
            json={"start": "2030-03-12T15:00:00+01:00", "end": "2030-03-12T16:00:00+01:00"},
            headers=rep.headers,
        )
        assert moved.status_code == 200, moved.text
        cancelled = await calendar.client.delete(
            path, params={"occurrence": "2030-03-18T10:00:00+01:00"}, headers=rep.headers
        )
        assert cancelled.status_code == 204, cancelled.text
        renamed = await calendar.client.patch(
            path, json={"summary": "Weekly review (new room)"}, headers=rep.headers
        )
        assert renamed.status_code == 200, renamed.text
        missing = await calendar.client.patch(
            path,
            params={"occurrence": "2030-03-05T09:00:00Z"},
            json={"summary": "x"},
            headers=rep.headers,
        )
        single = (
            await calendar.client.post(
                "/api/calendar/events", json={**WEEKLY, "recurrence": None}, headers=rep.headers
            )
        ).json()
        not_a_series = await calendar.client.delete(
            f"/api/calendar/events/{single['id']}",
            params={"occurrence": MONDAYS[0]},
            headers=rep.headers,
        )
        on_an_occurrence = await calendar.client.patch(
            f"/api/calendar/events/{moved.json()['id']}",
            json={"recurrence": ["RRULE:FREQ=DAILY"]},
            headers=rep.headers,
        )
        listed = await calendar.client.get(
            "/api/calendar/events", params={"include_cancelled": "true"}, headers=rep.headers
        )
    assert missing.status_code == 404
    # A series started before the window is listed in it; its occurrences are not expanded.
    later = await calendar_list(stack, rep, time_min="2030-03-20T00:00:00Z")
    assert [event["google_id"] for event in later] == [series["google_id"]]
    assert not_a_series.status_code == 422
    assert not_a_series.json()["errors"][0]["field"] == "query.occurrence"
    assert on_an_occurrence.status_code == 422
    assert on_an_occurrence.json()["errors"][0]["field"] == "body.recurrence"

    exception = moved.json()
    assert exception["id"] != series["id"]
    assert exception["recurring_event_id"] == series["google_id"]
    assert exception["original_start"]["date_time"] == "2030-03-11T09:00:00Z"
    assert exception["start"]["date_time"] == "2030-03-12T14:00:00Z"
    assert exception["recurrence"] == []
    # The mirror: the series (renamed, its rule kept) and its two exceptions.
    mirrored = {event["google_id"]: event for event in listed.json()["items"]}
    assert mirrored[series["google_id"]]["summary"] == "Weekly review (new room)"
    assert mirrored[series["google_id"]]["recurrence"] == WEEKLY["recurrence"]
    exceptions = {
        event["original_start"]["date_time"]: event["status"]
        for event in mirrored.values()
        if event["recurring_event_id"] == series["google_id"]
    }
    assert exceptions == {"2030-03-11T09:00:00Z": "confirmed", "2030-03-18T09:00:00Z": "cancelled"}
    # Google holds the same: the series renamed, one instance moved, one cancelled.
    expanded = {
        i["originalStartTime"]["dateTime"]: i
        for i in await instances(stack, rep, series["google_id"])
    }
    assert expanded["2030-03-11T10:00:00+01:00"]["start"]["dateTime"] == "2030-03-12T15:00:00+01:00"
    assert expanded["2030-03-18T10:00:00+01:00"]["status"] == "cancelled"
    assert expanded["2030-03-25T10:00:00+01:00"]["summary"] == "Weekly review (new room)"


async def test_an_occurrence_moved_in_google_reaches_the_mirror_as_an_exception(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as calendar:
        series = (
            await calendar.client.post("/api/calendar/events", json=WEEKLY, headers=rep.headers)
        ).json()
        watched = await calendar.client.post("/api/calendar/watch", headers=rep.headers)
        assert watched.status_code == 200, watched.text
        await stack.seed(
            "PATCH",
            rep,
            f"/{series['google_id']}_20300325T090000Z",
            json={"summary": "Moved in Google"},
        )
        await stack.seed("DELETE", rep, f"/{series['google_id']}_20300304T090000Z")

        async def exceptions() -> dict[str, str] | None:
            answer = await calendar.client.get(
                "/api/calendar/events", params={"include_cancelled": "true"}, headers=rep.headers
            )
            found = {
                event["original_start"]["date_time"]: event["status"]
                for event in answer.json()["items"]
                if event["recurring_event_id"] == series["google_id"]
            }
            return found if len(found) == 2 else None

        found = await eventually(exceptions)
    assert found == {"2030-03-04T09:00:00Z": "cancelled", "2030-03-25T09:00:00Z": "confirmed"}


async def test_only_the_owner_changes_an_occurrence_and_a_viewer_not_at_all(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    viewer = users.make(Role.VIEWER)
    strangers = [users.make(Role.REP), users.other_org().make(Role.ADMIN)]
    async with stack.start() as calendar:
        series = (
            await calendar.client.post("/api/calendar/events", json=WEEKLY, headers=rep.headers)
        ).json()
        path = f"/api/calendar/events/{series['id']}"
        occurrence = {"occurrence": MONDAYS[2]}
        for stranger in strangers:
            changed = await calendar.client.patch(
                path, params=occurrence, json={"summary": "Theirs"}, headers=stranger.headers
            )
            gone = await calendar.client.delete(path, params=occurrence, headers=stranger.headers)
            assert (changed.status_code, gone.status_code) == (404, 404)
        by_viewer = await calendar.client.patch(
            path, params=occurrence, json={"summary": "No"}, headers=viewer.headers
        )
        deleted_by_viewer = await calendar.client.delete(
            path, params=occurrence, headers=viewer.headers
        )
    assert (by_viewer.status_code, deleted_by_viewer.status_code) == (403, 403)
    assert await stack.calls(rep, "calendar.events.instances") == []
