"""Guests: the invitations, updates and cancellations Google e-mails for the API's changes."""

from typing import Any

import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import Users

pytestmark = pytest.mark.asyncio

HOUR = {"start": "2030-03-04T10:00:00Z", "end": "2030-03-04T11:00:00Z"}
CLIENT = "ann@client.example"
PARTNER = "joe@partner.example"


async def sent(stack: Any, google_id: str) -> list[tuple[str, str]]:
    """The guest e-mails Google sent about one event, oldest first."""
    answer = await stack.google.admin(
        "GET", "/calendar/notifications", params={"event_id": google_id}
    )
    return [(item["recipient"], item["kind"]) for item in answer.json()["notifications"]]


async def test_guests_are_invited_updated_and_told_of_the_cancellation(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as calendar:
        created = await calendar.client.post(
            "/api/calendar/events",
            json={**HOUR, "summary": "Pitch", "attendees": [CLIENT]},
            headers=rep.headers,
        )
        assert created.status_code == 201, created.text
        event = created.json()
        path = f"/api/calendar/events/{event['id']}"
        assert await sent(stack, event["google_id"]) == [(CLIENT, "invitation")]
        changed = await calendar.client.patch(
            path, json={"attendees": [CLIENT, PARTNER]}, headers=rep.headers
        )
        assert changed.status_code == 200, changed.text
        assert sorted((await sent(stack, event["google_id"]))[1:]) == [
            (CLIENT, "update"),
            (PARTNER, "invitation"),
        ]
        quiet = await calendar.client.patch(
            path, json={"summary": "Pitch (draft)", "notify": "none"}, headers=rep.headers
        )
        assert quiet.status_code == 200
        assert len(await sent(stack, event["google_id"])) == 3
        gone = await calendar.client.delete(path, headers=rep.headers)
        assert gone.status_code == 204
        assert sorted((await sent(stack, event["google_id"]))[3:]) == [
            (CLIENT, "cancellation"),
            (PARTNER, "cancellation"),
        ]
    sends = [
        call["query"].get("sendUpdates") for call in await stack.calls(rep, "calendar.events.patch")
    ]
    assert sends == ["all", "none"]


async def test_external_only_leaves_out_colleagues_who_use_google_calendar(
    stack: Any, users: Users
) -> None:
    rep, colleague = users.make(Role.REP), users.make(Role.REP)
    await stack.connect(rep)
    await stack.connect(colleague)
    async with stack.start() as calendar:
        created = await calendar.client.post(
            "/api/calendar/events",
            json={
                **HOUR,
                "summary": "Pitch",
                "attendees": [CLIENT, colleague.principal.email],
                "notify": "external_only",
            },
            headers=rep.headers,
        )
        assert created.status_code == 201, created.text
        event = created.json()
        assert await sent(stack, event["google_id"]) == [(CLIENT, "invitation")]
        gone = await calendar.client.delete(
            f"/api/calendar/events/{event['id']}", params={"notify": "none"}, headers=rep.headers
        )
        assert gone.status_code == 204
        assert len(await sent(stack, event["google_id"])) == 1
        refused = await calendar.client.post(
            "/api/calendar/events",
            json={**HOUR, "attendees": [CLIENT], "notify": "everyone"},
            headers=rep.headers,
        )
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == "body.notify"
