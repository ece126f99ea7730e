"""The calendar API against the Google emulator, with credentials from the accounts service."""

from typing import Any

import pytest

from pipedesk_common.auth import Role
from pipedesk_common.testing.plugin import Users

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
    async with stack.calendar() as calendar:
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
