"""A Meet Google creates later: the create answers `pending`, a later sync records the outcome."""

from typing import Any

import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import Users
from pipedesk_testkit.waiting import eventually

pytestmark = pytest.mark.asyncio

HOUR = {"start": "2030-03-04T10:00:00Z", "end": "2030-03-04T11:00:00Z"}


async def test_a_pending_meet_is_answered_at_once_and_its_outcome_synced_and_published(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    email = rep.principal.email
    await stack.google.admin("POST", f"/calendar/{email}/conferences", json={"outcome": "pending"})
    async with stack.start() as calendar:
        created = []
        for title in ("Call", "Demo"):
            answer = await calendar.client.post(
                "/api/calendar/events",
                json={**HOUR, "summary": title, "conference": True},
                headers=rep.headers,
            )
            assert answer.status_code == 201, answer.text
            created.append(answer.json())
        for event in created:
            assert (event["conference_status"], event["hangout_link"]) == ("pending", None)
        # The request did not wait for the Meet: one insert each, nothing read back.
        assert len(await stack.calls(rep, "calendar.events.insert")) == 2
        assert await stack.calls(rep, "calendar.events.get") == []
        # Asking again while Google is still at it sends no second create request.
        again = await calendar.client.patch(
            f"/api/calendar/events/{created[0]['id']}",
            json={"conference": True},
            headers=rep.headers,
        )
        assert again.json()["conference_status"] == "pending"
        assert await stack.calls(rep, "calendar.events.patch") == []

        watched = await calendar.client.post("/api/calendar/watch", headers=rep.headers)
        assert watched.status_code == 200
        await stack.google.admin(
            "POST", f"/calendar/{email}/conferences/settle", json={"outcome": "success"}
        )

        async def conference(event_id: str) -> dict[str, Any]:
            answer = await calendar.client.get(
                f"/api/calendar/events/{event_id}", headers=rep.headers
            )
            found: dict[str, Any] = answer.json()
            return found

        settled = await eventually(
            lambda: conference(created[0]["id"]),
            until=lambda event: event["conference_status"] != "pending",
        )
        assert settled["conference_status"] == "success"
        assert settled["hangout_link"].startswith("https://meet.google.com/")

        await stack.google.admin(
            "POST", f"/calendar/{email}/conferences", json={"outcome": "pending"}
        )
        third = (
            await calendar.client.post(
                "/api/calendar/events",
                json={**HOUR, "summary": "Review", "conference": True},
                headers=rep.headers,
            )
        ).json()
        await stack.google.admin(
            "POST", f"/calendar/{email}/conferences/settle", json={"outcome": "failure"}
        )
        failed = await eventually(
            lambda: conference(third["id"]),
            until=lambda event: event["conference_status"] != "pending",
        )
        assert (failed["conference_status"], failed["hangout_link"]) == ("failure", None)
    published = await stack.published("calendar.event.updated", created[0]["id"])
    assert published[-1]["conference_status"] == "success"
    assert published[-1]["timeline"]["source"]["url"] == settled["hangout_link"]
    failure = await stack.published("calendar.event.updated", third["id"])
    assert failure[-1]["conference_status"] == "failure"
    created_event = await stack.published("calendar.event.created", third["id"])
    assert created_event[0]["conference_status"] == "pending"
