"""A disconnected calendar's events follow the org's ``on_disconnect`` rule: kept as last seen
(the default), or removed from PipeDesk, each copy announced ``calendar.event.removed`` so the
timeline drops it; other users' and another org's events stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.waiting import eventually

pytestmark = pytest.mark.asyncio


async def create(service: Any, user: ActingUser, title: str) -> str:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    answer = await service.client.post(
        "/api/calendar/events",
        json={
            "title": title,
            "start": start.isoformat(),
            "end": (start + timedelta(hours=1)).isoformat(),
            "attendees": ["buyer@customer.example"],
            "notify": "none",
        },
        headers=user.headers,
    )
    assert answer.status_code == 201, answer.text
    event_id: str = answer.json()["id"]
    return event_id


async def disconnect_calendar(stack: Any, user: ActingUser) -> None:
    async with httpx.AsyncClient(base_url=stack.google.accounts_url, timeout=30) as accounts:
        gone = await accounts.delete("/api/accounts/google/products/calendar", headers=user.headers)
    assert gone.status_code == 204, gone.text


async def held(stack: Any, user: ActingUser) -> int:
    count: int = await stack.scalar(
        "SELECT count(*) FROM calendar.events WHERE user_id = :user", user=user.sub
    )
    return count


async def test_a_disconnected_calendars_events_are_kept_or_removed_as_the_org_says(
    stack: Any, users: Users
) -> None:
    keeper = users.make(Role.REP, teams=["t1"])
    remover = users.make(Role.REP, teams=["t1"])
    admin = users.make(Role.ADMIN)
    elsewhere_users = users.other_org()
    elsewhere = elsewhere_users.make(Role.REP, teams=["t1"])
    elsewhere_admin = elsewhere_users.make(Role.ADMIN)
    for user in (keeper, remover, elsewhere):
        await stack.connect(user)
    async with stack.start() as service:
        kept = await create(service, keeper, "Kept")
        removed = [await create(service, remover, title) for title in ("Demo", "Review")]
        theirs = await create(service, elsewhere, "Theirs")
        path = "/api/calendar/settings"
        default = await service.client.get(path, headers=admin.headers)
        assert default.json()["on_disconnect"] == "keep_metadata"
        bad = await service.client.put(path, json={"on_disconnect": "wipe"}, headers=admin.headers)
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "body.on_disconnect"

        # The org's default rule: the events stay, as last seen, no longer synced.
        await disconnect_calendar(stack, keeper)
        await eventually(
            lambda: stack.health(keeper), until=lambda h: h.get("state") == "needs_reconnect"
        )
        assert await held(stack, keeper) == 1
        assert await stack.published("calendar.event.removed", kept) == []

        # The org removes a disconnected account's events; another org's rule is its own.
        for who, rule in ((admin, "remove"), (elsewhere_admin, "keep_metadata")):
            answer = await service.client.put(
                path, json={"on_disconnect": rule}, headers=who.headers
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["on_disconnect"] == rule
        assert (await service.client.get(path, headers=admin.headers)).json()[
            "on_disconnect"
        ] == "remove"
        await disconnect_calendar(stack, remover)
        await eventually(lambda: held(stack, remover), until=lambda count: count == 0)
        for event_id in removed:
            [announced] = await stack.published("calendar.event.removed", event_id)
            assert announced["timeline"]["status"] == "removed"
            assert announced["timeline"]["summary"] is None
            assert announced["timeline"]["participants"] == []
        assert (
            await stack.scalar(
                "SELECT count(*) FROM calendar.event_links e WHERE NOT EXISTS "
                "(SELECT 1 FROM calendar.events WHERE id = e.event_id)"
            )
            == 0
        )
        # Nobody else's events moved.
        assert await held(stack, keeper) == 1
        assert await held(stack, elsewhere) == 1
        assert await stack.published("calendar.event.removed", theirs) == []
