"""The calendar API against the Google emulator, with credentials from the accounts service."""

from typing import Any

import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.attacks import ATTACKS, forged_tokens
from pipedesk_testkit.identities import Identity, Users

pytestmark = pytest.mark.asyncio

HOUR = {"start": "2030-03-04T10:00:00Z", "end": "2030-03-04T11:00:00Z"}


def google_view(event: dict[str, Any]) -> dict[str, Any]:
    """What makes two Google events "the same event" for a user."""
    return {
        "summary": event.get("summary"),
        "description": event.get("description"),
        "start": event["start"],
        "end": event["end"],
        "attendees": sorted(
            (a["email"], bool(a.get("optional")), a.get("displayName"))
            for a in event.get("attendees", [])
        ),
    }


SHAPES = [
    {
        "summary": "Pitch",
        "description": "Deck v2",
        "start": "2030-03-04T10:00:00+01:00",
        "end": "2030-03-04T11:00:00+01:00",
        "timezone": "Europe/Paris",
        "attendees": [{"email": "ann@client.example", "optional": True, "displayName": "Ann"}],
    },
    {
        "title": "Pitch",
        "notes": "Deck v2",
        "start_time": "2030-03-04T10:00:00",
        "end_time": "2030-03-04T11:00:00",
        "time_zone": "Europe/Paris",
        "attendees": [{"email": "Ann@Client.example", "optional": True, "displayName": "Ann"}],
    },
    {
        "title": "Pitch",
        "description": "Deck v2",
        "startTime": {"dateTime": "2030-03-04T10:00:00", "timeZone": "Europe/Paris"},
        "endTime": {"dateTime": "2030-03-04T10:00:00Z", "timeZone": "Europe/Paris"},
        "attendees": [{"email": "ann@client.example", "optional": True, "displayName": "Ann"}],
    },
]


async def test_every_alias_shape_creates_the_same_google_event(stack: Any, users: Users) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as calendar:
        created = []
        for shape in SHAPES:
            answer = await calendar.client.post(
                "/api/calendar/events", json=shape, headers=rep.headers
            )
            assert answer.status_code == 201, answer.text
            created.append(answer.json()["google_id"])
    in_google = {event["id"]: event for event in await stack.google_events(rep)}
    views = [google_view(in_google[google_id]) for google_id in created]
    assert views[0] == views[1] == views[2]
    assert views[0]["start"] == {
        "dateTime": "2030-03-04T10:00:00+01:00",
        "timeZone": "Europe/Paris",
    }
    assert views[0]["attendees"] == [("ann@client.example", True, "Ann")]


async def create(calendar: Any, user: Any, **body: Any) -> Any:
    return await calendar.client.post(
        "/api/calendar/events", json={**HOUR, **body}, headers=user.headers
    )


async def test_two_names_of_one_field_are_refused_before_any_google_call(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as calendar:
        for payload in (
            {"summary": "a", "title": "b", **HOUR},
            {"start": HOUR["start"], "startTime": HOUR["start"], "end": HOUR["end"]},
            {**HOUR, "timezone": "UTC", "time_zone": "UTC"},
        ):
            refused = await calendar.client.post(
                "/api/calendar/events", json=payload, headers=rep.headers
            )
            assert refused.status_code == 422
            assert refused.headers["content-type"] == "application/problem+json"
            named = {error["field"] for error in refused.json()["errors"]}
            assert len(named) == 2
            assert all(name.removeprefix("body.") in payload for name in named)
    assert await stack.calls(rep, "calendar.events.insert") == []


async def test_control_characters_are_refused_before_any_google_call(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as calendar:
        refused = await calendar.client.post(
            "/api/calendar/events", json={"summary": "a\u0000b", **HOUR}, headers=rep.headers
        )
        assert refused.status_code == 422, refused.text
        assert [error["field"] for error in refused.json()["errors"]] == ["body.summary"]
        listed = await calendar.client.get(
            "/api/calendar/events", params={"q": "\u0000"}, headers=rep.headers
        )
        assert listed.status_code == 422
        assert [error["field"] for error in listed.json()["errors"]] == ["query.q"]
        kept = await calendar.client.post(
            "/api/calendar/events",
            json={"summary": "Plan", "description": "one\ntwo\tthree", **HOUR},
            headers=rep.headers,
        )
        assert kept.status_code == 201, kept.text
        assert kept.json()["description"] == "one\ntwo\tthree"
    assert len(await stack.calls(rep, "calendar.events.insert")) == 1


async def test_the_openapi_schema_documents_the_aliases(stack: Any) -> None:
    async with stack.start() as calendar:
        schema = (await calendar.client.get("/openapi.json")).json()
    properties = schema["components"]["schemas"]["EventCreate"]["properties"]
    for alias, canonical in [
        ("title", "summary"),
        ("notes", "description"),
        ("start_time", "start"),
        ("startTime", "start"),
        ("end_time", "end"),
        ("endTime", "end"),
        ("time_zone", "timezone"),
    ]:
        assert properties[alias]["description"] == f"Alias of `{canonical}`."
        assert alias in properties[canonical]["description"]


async def test_a_meet_link_on_create_and_later(stack: Any, users: Users) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as calendar:
        with_meet = (await create(calendar, rep, summary="Call", conference=True)).json()
        assert with_meet["hangout_link"].startswith("https://meet.google.com/")
        plain = (await create(calendar, rep, summary="Lunch")).json()
        assert plain["hangout_link"] is None
        later = await calendar.client.patch(
            f"/api/calendar/events/{plain['id']}", json={"conference": True}, headers=rep.headers
        )
        assert later.status_code == 200
        assert later.json()["hangout_link"].startswith("https://meet.google.com/")
    in_google = {event["id"]: event for event in await stack.google_events(rep)}
    assert in_google[with_meet["google_id"]]["hangoutLink"] == with_meet["hangout_link"]
    assert in_google[plain["google_id"]]["hangoutLink"] == later.json()["hangout_link"]


async def test_all_day_events(stack: Any, users: Users) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as calendar:
        answer = await calendar.client.post(
            "/api/calendar/events",
            json={"title": "Offsite", "start": "2030-05-01", "end": {"date": "2030-05-03"}},
            headers=rep.headers,
        )
    assert answer.status_code == 201
    event = answer.json()
    assert event["all_day"] is True
    assert event["start"] == {"date_time": None, "date": "2030-05-01", "time_zone": None}
    in_google = {item["id"]: item for item in await stack.google_events(rep)}
    assert in_google[event["google_id"]]["end"] == {"date": "2030-05-03"}


async def test_a_retried_create_makes_one_google_event_also_after_a_restart(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    headers = {**rep.headers, "Idempotency-Key": "create-pitch-1"}
    body = {**HOUR, "summary": "Retried pitch"}
    async with stack.start() as calendar:
        first = await calendar.client.post("/api/calendar/events", json=body, headers=headers)
        again = await calendar.client.post("/api/calendar/events", json=body, headers=headers)
    async with stack.start() as restarted:
        after_restart = await restarted.client.post(
            "/api/calendar/events", json=body, headers=headers
        )
        other = await restarted.client.post(
            "/api/calendar/events", json={**body, "summary": "Another"}, headers=headers
        )
    assert first.status_code == 201
    assert again.status_code == 200
    assert after_restart.status_code == 200
    assert first.json()["id"] == again.json()["id"] == after_restart.json()["id"]
    assert other.status_code == 422
    assert other.json()["type"] == "urn:pipedesk:problem:idempotency-key-reused"
    assert [e["summary"] for e in await stack.google_events(rep)] == ["Retried pitch"]
    assert len(await stack.calls(rep, "calendar.events.insert")) == 1
    assert len(await stack.published("calendar.event.created", first.json()["id"])) == 1


async def test_googles_duplicate_answer_for_our_chosen_id_counts_as_success(
    stack: Any, users: Users
) -> None:
    """The first attempt reached Google, then died before answering: the retry's insert gets
    Google's 409 for the id derived from the key, and answers that event."""
    from pipedesk_common.idempotency import remote_id

    rep = users.make(Role.REP)
    await stack.connect(rep)
    key = "crashed-after-google"
    scope = f"calendar.events.create:{rep.principal.org_id}:{rep.sub}"
    await stack.seed(
        "POST",
        rep,
        json={
            "id": remote_id(scope, key),
            "summary": "Half",
            **{"start": {"dateTime": HOUR["start"]}, "end": {"dateTime": HOUR["end"]}},
        },
    )
    async with stack.start() as calendar:
        answer = await calendar.client.post(
            "/api/calendar/events",
            json={**HOUR, "summary": "Half"},
            headers={**rep.headers, "Idempotency-Key": key},
        )
    assert answer.status_code == 201
    assert answer.json()["google_id"] == remote_id(scope, key)
    inserts = await stack.calls(rep, "calendar.events.insert")
    assert [call["status"] for call in inserts] == [409]
    assert len(await stack.google_events(rep)) == 1


async def test_429_bursts_are_absorbed_by_retries(stack: Any, users: Users) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as calendar:
        await stack.google.admin(
            "POST",
            "/faults",
            json={
                "api_method": "calendar.events.insert",
                "status": 429,
                "count": 3,
                "user": rep.principal.email,
            },
        )
        try:
            answer = await create(calendar, rep, summary="Busy Google")
        finally:
            await stack.google.admin("DELETE", "/faults")
    assert answer.status_code == 201
    statuses = [call["status"] for call in await stack.calls(rep, "calendar.events.insert")]
    # Faults answer before the token is read, so the log names no user for them.
    all_inserts = await stack.google.requests(api="calendar.events.insert")
    assert statuses == [200]
    assert [call["status"] for call in all_inserts[-4:]] == [429, 429, 429, 200]
    assert [e["summary"] for e in await stack.google_events(rep)] == ["Busy Google"]


async def test_a_rep_cannot_link_an_event_to_a_lead_they_cannot_see(
    stack: Any, users: Users
) -> None:
    rep, other_rep = users.make(Role.REP), users.make(Role.REP)
    await stack.connect(rep)
    hidden = await stack.lead(other_rep, "Not yours")
    own = await stack.lead(rep, "Yours")
    async with stack.start() as calendar:
        refused = await create(calendar, rep, links=[{"type": "lead", "id": hidden}])
        unknown = await create(
            calendar, rep, links=[{"type": "deal", "id": "00000000-0000-7000-8000-000000000000"}]
        )
        linked = await create(calendar, rep, links=[{"type": "lead", "id": own}])
    assert refused.status_code == 404
    assert refused.headers["content-type"] == "application/problem+json"
    assert unknown.status_code == 404
    assert linked.status_code == 201
    assert linked.json()["links"] == [{"type": "lead", "id": own, "hidden": False}]
    assert len(await stack.calls(rep, "calendar.events.insert")) == 1


async def test_a_follower_may_read_a_lead_but_not_add_meetings_to_it(
    stack: Any, users: Users
) -> None:
    owner, viewer = users.make(Role.REP, teams=["t1"]), users.make(Role.VIEWER, teams=["t1"])
    manager = users.make(Role.MANAGER, teams=["t1"])
    await stack.connect(viewer)
    await stack.connect(manager)
    lead = await stack.lead(owner)
    async with stack.start() as calendar:
        by_viewer = await create(calendar, viewer, links=[{"type": "lead", "id": lead}])
        by_manager = await create(calendar, manager, links=[{"type": "lead", "id": lead}])
    assert by_viewer.status_code == 403
    assert by_manager.status_code == 201


async def test_only_the_calendars_owner_reads_or_changes_an_event(stack: Any, users: Users) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    strangers = [users.make(Role.REP), users.make(Role.ADMIN), users.other_org().make(Role.ADMIN)]
    async with stack.start() as calendar:
        event = (await create(calendar, rep, summary="Mine")).json()
        path = f"/api/calendar/events/{event['id']}"
        assert (await calendar.client.get(path, headers=rep.headers)).status_code == 200
        for stranger in strangers:
            assert (await calendar.client.get(path, headers=stranger.headers)).status_code == 404
            changed = await calendar.client.patch(
                path, json={"summary": "Theirs"}, headers=stranger.headers
            )
            assert changed.status_code == 404
            assert (await calendar.client.delete(path, headers=stranger.headers)).status_code == 404
            listed = await calendar.client.get("/api/calendar/events", headers=stranger.headers)
            assert listed.json()["items"] == []
        assert (await calendar.client.get(path)).status_code == 401
    assert [e["summary"] for e in await stack.google_events(rep)] == ["Mine"]


async def test_a_viewer_may_not_create_events(stack: Any, users: Users) -> None:
    viewer = users.make(Role.VIEWER)
    async with stack.start() as calendar:
        refused = await create(calendar, viewer, summary="No")
        watch = await calendar.client.post("/api/calendar/watch", headers=viewer.headers)
    assert refused.status_code == 403
    assert watch.status_code == 403


async def test_events_are_listed_by_time_range_and_by_record(stack: Any, users: Users) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    lead = await stack.lead(rep)
    hidden = await stack.lead(users.make(Role.REP))
    async with stack.start() as calendar:
        for day in (1, 2, 3, 4):
            links = [{"type": "lead", "id": lead}] if day % 2 == 0 else []
            answer = await calendar.client.post(
                "/api/calendar/events",
                json={
                    "title": f"Day {day}",
                    "start": f"2030-06-0{day}T09:00:00Z",
                    "end": f"2030-06-0{day}T10:00:00Z",
                    "links": links,
                },
                headers=rep.headers,
            )
            assert answer.status_code == 201

        async def titles(**params: Any) -> list[str]:
            answer = await calendar.client.get(
                "/api/calendar/events", params=params, headers=rep.headers
            )
            assert answer.status_code == 200, answer.text
            return [item["summary"] for item in answer.json()["items"]]

        assert await titles() == ["Day 1", "Day 2", "Day 3", "Day 4"]
        window = {"time_min": "2030-06-02T00:00:00Z", "time_max": "2030-06-04T00:00:00Z"}
        assert await titles(**window) == ["Day 2", "Day 3"]
        assert await titles(record_type="lead", record_id=lead) == ["Day 2", "Day 4"]
        first = await calendar.client.get(
            "/api/calendar/events", params={"limit": 3}, headers=rep.headers
        )
        rest = await calendar.client.get(
            "/api/calendar/events",
            params={"limit": 3, "cursor": first.json()["next_cursor"]},
            headers=rep.headers,
        )
        assert [item["summary"] for item in rest.json()["items"]] == ["Day 4"]
        assert rest.json()["next_cursor"] is None
        refused = await calendar.client.get(
            "/api/calendar/events",
            params={"record_type": "lead", "record_id": hidden},
            headers=rep.headers,
        )
        assert refused.status_code == 404


async def test_changes_through_the_api_are_published(stack: Any, users: Users) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    lead = await stack.lead(rep)
    async with stack.start() as calendar:
        event = (
            await create(
                calendar,
                rep,
                summary="Demo",
                attendees=["Client@Example.com"],
                links=[{"type": "lead", "id": lead}],
                visibility="private",
            )
        ).json()
        ical_uid = {item["id"]: item["iCalUID"] for item in await stack.google_events(rep)}[
            event["google_id"]
        ]
        path = f"/api/calendar/events/{event['id']}"
        moved = await calendar.client.patch(
            path,
            json={
                "startTime": "2030-03-04T12:00:00Z",
                "end_time": "2030-03-04T13:00:00Z",
                "title": "Demo, moved",
            },
            headers=rep.headers,
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["end"]["date_time"] == "2030-03-04T13:00:00Z"
        early = await calendar.client.patch(
            path, json={"start": "2030-03-04T14:00:00Z"}, headers=rep.headers
        )
        assert early.status_code == 422
        assert early.json()["errors"][0]["field"] == "body.end"
        cancelled = await calendar.client.delete(path, headers=rep.headers)
        assert cancelled.status_code == 204
        assert (await calendar.client.get(path, headers=rep.headers)).json()[
            "status"
        ] == "cancelled"
    created = await stack.published("calendar.event.created", event["id"])
    updated = await stack.published("calendar.event.updated", event["id"])
    gone = await stack.published("calendar.event.cancelled", event["id"])
    assert [data["version"] for data in created + updated + gone] == [1, 2, 3]
    projection = created[0]["timeline"]
    assert projection["kind"] == "meeting"
    assert projection["links"] == [{"type": "lead", "id": lead}]
    assert projection["participants"] == sorted(["client@example.com", rep.principal.email])
    assert projection["visibility"] == {"private": True, "sharing": None, "owner_id": rep.sub}
    assert projection["actor_id"] == rep.sub
    # Every copy of the meeting (the organizer's, each attendee's) carries it: one timeline item.
    assert {data["timeline"]["identity"] for data in created + updated + gone} == {ical_uid}
    assert updated[0]["summary"] == "Demo, moved"
    assert gone[0]["status"] == "cancelled"


async def test_free_busy_of_the_callers_calendar(stack: Any, users: Users) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as calendar:
        await create(calendar, rep, summary="Busy")
        answer = await calendar.client.get(
            "/api/calendar/freebusy",
            params={"time_min": "2030-03-04T00:00:00Z", "time_max": "2030-03-05T00:00:00Z"},
            headers=rep.headers,
        )
        backwards = await calendar.client.get(
            "/api/calendar/freebusy",
            params={"time_min": "2030-03-05T00:00:00Z", "time_max": "2030-03-04T00:00:00Z"},
            headers=rep.headers,
        )
        as_number = await calendar.client.get(
            "/api/calendar/events", params={"time_min": "0.5"}, headers=rep.headers
        )
        someone_else = await calendar.client.get(
            "/api/calendar/freebusy",
            params={
                "time_min": "2030-03-04T00:00:00Z",
                "time_max": "2030-03-05T00:00:00Z",
                "calendar_id": users.make(Role.REP).principal.email,
            },
            headers=rep.headers,
        )
    # A number is not a moment (pydantic alone would read 0.5 as seconds since 1970)
    assert as_number.status_code == 422, as_number.text
    assert [e["field"] for e in as_number.json()["errors"]] == ["query.time_min"]
    assert answer.status_code == 200, answer.text
    assert answer.json()["calendars"] == {
        "primary": [{"start": "2030-03-04T10:00:00Z", "end": "2030-03-04T11:00:00Z"}]
    }
    assert backwards.status_code == 422
    assert backwards.json()["errors"][0]["field"] == "query.time_max"
    assert someone_else.status_code == 404
    assert [c["api"] for c in await stack.calls(rep, "calendar.freebusy.query")] == [
        "calendar.freebusy.query"
    ]


async def test_internal_routes_take_service_tokens_only(stack: Any, users: Users) -> None:
    admin = users.make(Role.ADMIN)
    async with stack.start() as calendar:
        for headers in ({}, admin.headers):
            refused = await calendar.client.post(
                "/internal/jobs/calendar.reconcile", headers=headers
            )
            assert refused.status_code == 401
        assert (await calendar.run_job("calendar.reconcile"))["job"] == "calendar.reconcile"


async def test_events_on_a_secondary_calendar_and_a_channel_per_calendar(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    team = (
        await stack.google.admin(
            "POST", f"/calendar/{rep.principal.email}/calendars", json={"summary": "Team"}
        )
    ).json()
    async with stack.start() as calendar:
        listed = await calendar.client.get("/api/calendar/calendars", headers=rep.headers)
        assert listed.status_code == 200
        assert {(c["id"], c["primary"]) for c in listed.json()["items"]} == {
            (rep.principal.email, True),
            (team["id"], False),
        }
        on_team = await create(calendar, rep, summary="Stand-up", calendar_id=team["id"])
        assert on_team.status_code == 201
        assert on_team.json()["calendar_id"] == team["id"]
        foreign = await create(calendar, rep, calendar_id="someone-else@example.com")
        assert foreign.status_code == 404
        watched = await calendar.client.post("/api/calendar/watch", headers=rep.headers)
        assert {c["calendar_id"] for c in watched.json()["channels"]} == {
            rep.principal.email,
            team["id"],
        }
        unnamed = await calendar.client.post(
            "/api/calendar/watch", json={"calendar_id": ""}, headers=rep.headers
        )
        assert unnamed.status_code == 422, unnamed.text  # never sent to Google as a 502
        assert [e["field"] for e in unnamed.json()["errors"]] == ["body.calendar_id"]
        again = await calendar.client.post("/api/calendar/watch", headers=rep.headers)
        assert {c["id"] for c in again.json()["channels"]} == {
            c["id"] for c in watched.json()["channels"]
        }
        only_team = await calendar.client.get(
            "/api/calendar/events", params={"calendar_id": team["id"]}, headers=rep.headers
        )
        assert [e["summary"] for e in only_team.json()["items"]] == ["Stand-up"]
        stopped = await calendar.client.delete("/api/calendar/watch", headers=rep.headers)
        assert stopped.status_code == 204
    channels = (await stack.google.admin("GET", "/calendar/channels")).json()["channels"]
    mine = [c for c in channels if c["owner"] == rep.principal.email]
    assert len(mine) == 2
    assert all(c["stopped"] for c in mine)


async def test_a_user_without_google_is_told_to_connect(stack: Any, users: Users) -> None:
    rep = users.make(Role.REP)
    async with stack.start() as calendar:
        answer = await create(calendar, rep, summary="Nowhere")
    assert answer.status_code == 409
    assert answer.json()["type"] == "urn:pipedesk:problem:google-not-connected"


ROUTES = (
    ("POST", "/api/calendar/events"),
    ("GET", "/api/calendar/events"),
    ("GET", "/api/calendar/events/00000000-0000-7000-8000-000000000000"),
    ("PATCH", "/api/calendar/events/00000000-0000-7000-8000-000000000000"),
    ("DELETE", "/api/calendar/events/00000000-0000-7000-8000-000000000000"),
    ("GET", "/api/calendar/calendars"),
    ("GET", "/api/calendar/freebusy"),
    ("POST", "/api/calendar/watch"),
    ("DELETE", "/api/calendar/watch"),
)


async def test_every_api_route_requires_a_valid_token(stack: Any, identity: Identity) -> None:
    attacks = forged_tokens(identity)
    async with stack.start() as calendar:
        for method, path in ROUTES:
            missing = await calendar.client.request(method, path)
            assert missing.status_code == 401, (method, path)
            for name in ATTACKS:
                headers = {"Authorization": f"Bearer {attacks[name]()}"}
                forged = await calendar.client.request(method, path, headers=headers)
                assert forged.status_code == 401, (method, path, name)


async def test_internal_routes_refuse_services_they_do_not_name(stack: Any, users: Users) -> None:
    rep = users.make(Role.REP)
    body = {"org_id": rep.principal.org_id, "user_id": rep.sub}
    async with stack.start() as calendar:
        for caller in ("crm", "tasks", "automation"):
            refused = await calendar.internal(
                "POST", "/internal/sync/resync", caller=caller, json=body
            )
            assert refused.status_code == 403, caller
        for caller in ("crm", "accounts"):
            refused = await calendar.internal(
                "POST", "/internal/jobs/calendar.reconcile", caller=caller
            )
            assert refused.status_code == 403, caller
        for headers in ({}, rep.headers):
            anonymous = await calendar.client.post(
                "/internal/sync/resync", json=body, headers=headers
            )
            assert anonymous.status_code == 401
        accepted = await calendar.internal(
            "POST", "/internal/sync/resync", caller="accounts", json=body
        )
        assert accepted.status_code == 202
        assert accepted.json() == {"syncs": 0}  # nothing of this user is mirrored


@pytest.mark.parametrize(
    "address", ["ann@example..com", "ann@.example.com", "ann@example.com.", "ann@exa_mple.com"]
)
async def test_an_attendee_google_would_refuse_is_a_422_naming_it_before_any_google_call(
    stack: Any, users: Users, address: str
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as calendar:
        created = await create(calendar, rep, summary="Review", attendees=["bob@example.com"])
        assert created.status_code == 201, created.text
        refused = await create(
            calendar, rep, summary="Review", attendees=["bob@example.com", address]
        )
        changed = await calendar.client.patch(
            f"/api/calendar/events/{created.json()['id']}",
            json={"attendees": [{"email": address}]},
            headers=rep.headers,
        )
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "body.attendees.1"
    assert changed.status_code == 422, changed.text
    assert changed.json()["errors"][0]["field"] == "body.attendees.0"
    assert len(await stack.calls(rep, "calendar.events.insert")) == 1
    assert await stack.calls(rep, "calendar.events.patch") == []


@pytest.mark.parametrize(
    "how", [{"status": 503}, {"status": 0, "drop": True}], ids=["503", "cut-off"]
)
async def test_an_event_whose_answer_was_lost_is_sent_again_under_its_own_id_and_made_once(
    stack: Any, users: Users, how: dict[str, Any]
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    fault = {"api_method": "calendar.events.insert", "after_store": True, **how}
    async with stack.start() as calendar:
        await stack.google.admin("POST", "/faults", json={**fault, "user": rep.principal.email})
        answer = await create(calendar, rep, summary="Stored, answer lost")
    assert answer.status_code == 201, answer.text
    # Repeatable (our own event id): sent again, Google's 409 duplicate answered by the event.
    statuses = [call["status"] for call in await stack.calls(rep, "calendar.events.insert")]
    assert statuses[1:] == [409]
    [event] = await stack.google_events(rep)
    assert event["id"] == answer.json()["google_id"]
