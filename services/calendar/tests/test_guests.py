"""Guests: the invitations, updates and cancellations Google e-mails for the API's changes."""

from typing import Any

import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import Users
from pipedesk_testkit.waiting import eventually

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


async def invitation_in_mirror(stack: Any, calendar: Any, guest: Any, google_id: str) -> str:
    """Sync the guest's calendar until their copy of ``google_id`` is mirrored; its id."""
    answer = await calendar.client.post("/api/calendar/watch", headers=guest.headers)
    assert answer.status_code == 200, answer.text

    async def mirrored() -> Any:
        return await stack.scalar(
            "SELECT id FROM calendar.events WHERE user_id = :user AND google_id = :google_id",
            user=guest.sub,
            google_id=google_id,
        )

    return str(await eventually(mirrored))


async def test_a_guest_may_not_change_an_invitation_but_answers_it(
    stack: Any, users: Users
) -> None:
    organizer, guest = users.make(Role.REP), users.make(Role.REP)
    viewer, stranger = users.make(Role.VIEWER), users.other_org().make(Role.ADMIN)
    await stack.connect(organizer)
    await stack.connect(guest)
    async with stack.start() as calendar:
        created = await calendar.client.post(
            "/api/calendar/events",
            json={**HOUR, "summary": "Pitch", "attendees": [guest.principal.email, CLIENT]},
            headers=organizer.headers,
        )
        assert created.status_code == 201, created.text
        event = created.json()
        assert (event["is_organizer"], event["response_status"]) == (True, None)
        copy_id = await invitation_in_mirror(stack, calendar, guest, event["google_id"])
        path = f"/api/calendar/events/{copy_id}"
        copy = (await calendar.client.get(path, headers=guest.headers)).json()
        assert (copy["is_organizer"], copy["response_status"]) == (False, "needsAction")

        refused = await calendar.client.patch(
            path, json={"summary": "Mine now"}, headers=guest.headers
        )
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"].endswith(":not-organizer")
        assert organizer.principal.email in refused.json()["detail"]
        assert f"/api/calendar/events/{copy_id}/rsvp" in refused.json()["detail"]
        assert await stack.calls(guest, "calendar.events.patch") == []

        answered = await calendar.client.post(
            f"{path}/rsvp", json={"response": "accepted"}, headers=guest.headers
        )
        assert answered.status_code == 200, answered.text
        assert answered.json()["response_status"] == "accepted"
        assert answered.json()["summary"] == "Pitch"
        # Google passes the answer to the organizer's event.
        in_google = {e["id"]: e for e in await stack.google_events(organizer)}
        replies = {
            a["email"]: a["responseStatus"] for a in in_google[event["google_id"]]["attendees"]
        }
        assert replies[guest.principal.email] == "accepted"
        assert replies[CLIENT] == "needsAction"
        updated = await stack.published("calendar.event.updated", copy_id)
        assert updated[-1]["timeline"]["actor_id"] == guest.sub

        not_invited = await calendar.client.post(
            f"/api/calendar/events/{event['id']}/rsvp",
            json={"response": "declined"},
            headers=organizer.headers,
        )
        assert not_invited.status_code == 409
        bad = await calendar.client.post(
            f"{path}/rsvp", json={"response": "maybe"}, headers=guest.headers
        )
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "body.response"
        for other, status in ((viewer, 403), (stranger, 404), (organizer, 404)):
            answer = await calendar.client.post(
                f"{path}/rsvp", json={"response": "declined"}, headers=other.headers
            )
            assert answer.status_code == status, (other.role, answer.text)
        assert (
            await calendar.client.post(f"{path}/rsvp", json={"response": "declined"})
        ).status_code == 401


async def test_googles_refusal_of_a_guests_change_is_answered_as_not_organizer(
    stack: Any, users: Users
) -> None:
    """A mirror that has not yet seen that the event is an invitation: Google's 403
    forbiddenForNonOrganizer becomes the same clear problem."""
    organizer, guest = users.make(Role.REP), users.make(Role.REP)
    await stack.connect(organizer)
    await stack.connect(guest)
    async with stack.start() as calendar:
        created = await calendar.client.post(
            "/api/calendar/events",
            json={**HOUR, "summary": "Pitch", "attendees": [guest.principal.email]},
            headers=organizer.headers,
        )
        copy_id = await invitation_in_mirror(stack, calendar, guest, created.json()["google_id"])
        await stack.execute(
            "UPDATE calendar.events SET resource = jsonb_set(resource, '{organizer,self}', 'true')"
            " WHERE id = :id",
            id=copy_id,
        )
        refused = await calendar.client.patch(
            f"/api/calendar/events/{copy_id}", json={"summary": "Mine now"}, headers=guest.headers
        )
    assert refused.status_code == 403
    assert refused.json()["type"].endswith(":not-organizer")
    assert [call["status"] for call in await stack.calls(guest, "calendar.events.patch")] == [403]
    in_google = {e["id"]: e for e in await stack.google_events(organizer)}
    assert in_google[created.json()["google_id"]]["summary"] == "Pitch"
