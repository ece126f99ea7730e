"""The org's event retention: mirrored events that ended more than ``retention_days`` ago (on the
service's clock) leave PipeDesk and every timeline when the ``calendar.retention`` job runs, each
copy announced ``removed``; newer events, series and another org's events stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipedesk_common.auth import Role
from pipedesk_common.clock import ManualClock
from pipedesk_testkit.identities import ActingUser, Users

pytestmark = pytest.mark.asyncio


async def create(
    service: Any, user: ActingUser, title: str, ended: timedelta, *, now: datetime, **more: Any
) -> str:
    """An event of ``user``'s of one hour that ended ``ended`` before ``now``; its id."""
    end = now - ended
    answer = await service.client.post(
        "/api/calendar/events",
        json={
            "title": title,
            "start": (end - timedelta(hours=1)).isoformat(),
            "end": end.isoformat(),
            "attendees": ["buyer@customer.example"],
            "notify": "none",
            **more,
        },
        headers=user.headers,
    )
    assert answer.status_code == 201, answer.text
    event_id: str = answer.json()["id"]
    return event_id


async def titles(stack: Any, user: ActingUser) -> list[str]:
    found = await stack.scalar(
        "SELECT coalesce(array_agg(summary ORDER BY summary), '{}') FROM calendar.events "
        "WHERE user_id = :user",
        user=user.sub,
    )
    return list(found)


async def test_events_older_than_the_orgs_retention_leave_pipedesk_and_every_timeline(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    admin = users.make(Role.ADMIN)
    manager = users.make(Role.MANAGER, teams=["t1"])
    elsewhere_users = users.other_org()
    elsewhere = elsewhere_users.make(Role.REP, teams=["t1"])
    elsewhere_admin = elsewhere_users.make(Role.ADMIN)
    # The service's clock starts at the real time of the test (users' tokens are minted on the
    # real clock as the test runs), then moves.
    now = datetime.now(UTC).replace(microsecond=0)
    clock = ManualClock(now)
    for user in (rep, elsewhere):
        await stack.connect(user)
    async with stack.start(clock) as service:
        old = await create(service, rep, "Old", timedelta(days=40), now=now)
        recent = await create(service, rep, "Recent", timedelta(days=10), now=now)
        series = await create(
            service,
            rep,
            "Weekly",
            timedelta(days=90),
            now=now,
            recurrence=["RRULE:FREQ=WEEKLY"],
        )
        for title in ("Old", "Recent"):
            await create(service, elsewhere, title, timedelta(days=40), now=now)
        assert await titles(stack, rep) == ["Old", "Recent", "Weekly"]

        # Without a retention the job keeps everything.
        assert (await service.run_job("calendar.retention"))["result"] == 0
        path = "/api/calendar/settings"
        unset = await service.client.get(path, headers=admin.headers)
        assert unset.status_code == 200, unset.text
        assert unset.json()["retention_days"] is None

        # Only an admin sets it; a rep does not even read it; bad values name the field.
        refused = await service.client.put(
            path, json={"retention_days": 30}, headers=manager.headers
        )
        assert refused.status_code == 403
        assert (await service.client.get(path, headers=rep.headers)).status_code == 403
        for bad in (0, -1, 36501, "a month", True, "30"):
            answer = await service.client.put(
                path, json={"retention_days": bad}, headers=admin.headers
            )
            assert answer.status_code == 422, answer.text
            assert answer.json()["errors"][0]["field"] == "body.retention_days"
        unknown = await service.client.put(path, json={"keep": 3}, headers=admin.headers)
        assert unknown.status_code == 422
        kept = await service.client.put(path, json={"retention_days": 30}, headers=admin.headers)
        assert kept.status_code == 200, kept.text
        assert kept.json()["retention_days"] == 30
        assert (await service.client.get(path, headers=manager.headers)).json()[
            "retention_days"
        ] == 30
        # Another org's admin reads and sets their own org's settings only.
        theirs = await service.client.get(path, headers=elsewhere_admin.headers)
        assert theirs.json()["retention_days"] is None

        assert (await service.run_job("calendar.retention"))["result"] == 1
        assert await titles(stack, rep) == ["Recent", "Weekly"]
        [removed] = await stack.published("calendar.event.removed", old)
        assert removed["timeline"]["status"] == "removed"
        assert removed["timeline"]["participants"] == []
        assert removed["timeline"]["summary"] is None
        [created] = await stack.published("calendar.event.created", old)
        assert removed["version"] > created["version"]
        assert removed["timeline"]["version"] == removed["version"]
        assert (
            await stack.scalar(
                "SELECT count(*) FROM calendar.event_links e WHERE NOT EXISTS "
                "(SELECT 1 FROM calendar.events WHERE id = e.event_id)"
            )
            == 0
        )
        # Another org, without a retention, keeps its old events; a second run removes nothing.
        assert await titles(stack, elsewhere) == ["Old", "Recent"]
        assert (await service.run_job("calendar.retention"))["result"] == 0

        # Time passes on the service's clock alone: the recent event ages past the limit too;
        # the series, whose occurrences go on, stays.
        clock.advance(timedelta(days=25))
        assert (await service.run_job("calendar.retention"))["result"] == 1
        assert await titles(stack, rep) == ["Weekly"]
        assert await stack.published("calendar.event.removed", recent)
        assert await stack.published("calendar.event.removed", series) == []
        assert await titles(stack, elsewhere) == ["Old", "Recent"]
