"""Push and sync: Google-side changes reach the mirror (and the outbox) through the webhook and
incremental sync, with the emulator's request log as the witness of what Google was asked."""

import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from calendar_service.google import CalendarGoogle, GoogleEvent
from calendar_service.settings import DEV_CHANNEL_SECRET, WEBHOOK_PATH
from calendar_service.sync import CalendarSync
from pipedesk_common.auth import Role
from pipedesk_common.clock import ManualClock, SystemClock
from pipedesk_common.db import create_sessionmaker
from pipedesk_common.google import PRODUCT_SCOPES, GoogleApi
from pipedesk_common.google.calls import GoogleQuotaExhausted, RetryPolicy
from pipedesk_common.google.push import channel_token
from pipedesk_common.google.resources import Page
from pipedesk_common.mirror.keys import SyncKey
from pipedesk_common.uow import UnitOfWork
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.waiting import eventually

pytestmark = pytest.mark.asyncio

HOUR = {"start": "2030-03-04T10:00:00Z", "end": "2030-03-04T11:00:00Z"}
GOOGLE_HOUR = {"start": {"dateTime": HOUR["start"]}, "end": {"dateTime": HOUR["end"]}}


async def sync_token(stack: Any, user: ActingUser) -> str | None:
    token: str | None = await stack.scalar(
        'SELECT sync_token FROM calendar.calendars WHERE user_id = :user AND "primary"',
        user=user.sub,
    )
    return token


async def watch(stack: Any, calendar: Any, user: ActingUser) -> dict[str, Any]:
    """Watch the user's calendars and wait for the first full sync; their one channel."""
    answer = await calendar.client.post("/api/calendar/watch", headers=user.headers)
    assert answer.status_code == 200, answer.text
    channels = answer.json()["channels"]
    assert len(channels) == 1
    await eventually(lambda: sync_token(stack, user))
    resource_id = await stack.scalar(
        "SELECT resource_id FROM calendar.push_channels WHERE id = :id", id=channels[0]["id"]
    )
    return {**channels[0], "resource_id": resource_id}


async def notify(
    calendar: Any, channel: dict[str, Any], state: str, token: str | None = None
) -> Any:
    headers = {
        "X-Goog-Channel-ID": channel["id"],
        "X-Goog-Channel-Token": token or channel_token(DEV_CHANNEL_SECRET.encode(), channel["id"]),
        "X-Goog-Resource-ID": channel["resource_id"],
        "X-Goog-Resource-State": state,
        "X-Goog-Message-Number": "7",
    }
    return await calendar.client.post(WEBHOOK_PATH, headers=headers)


async def incremental_lists(stack: Any, user: ActingUser) -> list[dict[str, Any]]:
    calls = await stack.calls(user, "calendar.events.list")
    return [call for call in calls if "syncToken" in call["query"]]


async def test_an_edit_in_google_is_pushed_synced_with_the_stored_token_and_published(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as calendar:
        event = (
            await calendar.client.post(
                "/api/calendar/events", json={**HOUR, "title": "Review"}, headers=rep.headers
            )
        ).json()
        await watch(stack, calendar, rep)
        stored = await sync_token(stack, rep)
        await stack.seed("PATCH", rep, f"/{event['google_id']}", json={"summary": "Review (moved)"})

        async def summary() -> str:
            answer = await calendar.client.get(
                f"/api/calendar/events/{event['id']}", headers=rep.headers
            )
            return str(answer.json()["summary"])

        await eventually(summary, until=lambda value: value == "Review (moved)")
        invited = await stack.seed(
            "POST", rep, json={"as": "bob@partner.example", "summary": "Bob's call", **GOOGLE_HOUR}
        )
        await stack.seed("DELETE", rep, f"/{event['google_id']}")

        async def cancelled() -> list[dict[str, Any]]:
            return list(await stack.published("calendar.event.cancelled", event["id"]))

        await eventually(cancelled)
    assert stored in [call["query"]["syncToken"] for call in await incremental_lists(stack, rep)]
    updated = await stack.published("calendar.event.updated", event["id"])
    assert updated[-1]["summary"] == "Review (moved)"
    assert updated[-1]["timeline"]["actor_id"] is None
    mirrored = await stack.scalar(
        "SELECT id FROM calendar.events WHERE google_id = :google_id", google_id=invited["id"]
    )
    created = await stack.published("calendar.event.created", mirrored)
    assert [data["summary"] for data in created] == ["Bob's call"]
    assert created[0]["organizer"] == "bob@partner.example"


async def test_an_event_with_an_overlong_ical_uid_is_published_under_its_digest(
    stack: Any, users: Users
) -> None:
    """An iCalUID longer than a projection's identity takes (Google allows event ids of 1024
    characters) is published as its SHA-256, never refused."""
    rep = users.make(Role.REP)
    await stack.connect(rep)
    long_id = "v" * 400
    async with stack.start() as calendar:
        await watch(stack, calendar, rep)
        await stack.seed("POST", rep, json={"id": long_id, "summary": "Long", **GOOGLE_HOUR})

        async def published() -> list[dict[str, Any]]:
            mirrored = await stack.scalar(
                "SELECT id FROM calendar.events WHERE google_id = :google_id", google_id=long_id
            )
            return (
                list(await stack.published("calendar.event.created", mirrored)) if mirrored else []
            )

        [created] = await eventually(published)
    digest = hashlib.sha256(f"{long_id}@google.com".encode()).hexdigest()
    assert created["timeline"]["identity"] == f"sha256:{digest}"


async def mirror_of(stack: Any, user: ActingUser) -> dict[str, Any]:
    engine = create_async_engine(stack.database_url)
    try:
        async with engine.connect() as connection:
            from sqlalchemy import text

            rows = await connection.execute(
                text(
                    "SELECT google_id, resource FROM calendar.events "
                    "WHERE user_id = :user AND status <> 'cancelled'"
                ),
                {"user": user.sub},
            )
            return {row.google_id: row.resource for row in rows}
    finally:
        await engine.dispose()


async def test_a_410_on_the_sync_token_rebuilds_the_mirror_equal_to_google(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start(sync_page_size=2) as calendar:
        made = [
            (
                await calendar.client.post(
                    "/api/calendar/events", json={**HOUR, "title": f"E{n}"}, headers=rep.headers
                )
            ).json()
            for n in range(4)
        ]
        await watch(stack, calendar, rep)
        await stack.google.admin("POST", f"/calendar/{rep.principal.email}/invalidate-sync-tokens")
        await stack.seed("DELETE", rep, f"/{made[0]['google_id']}")
        await stack.seed("PATCH", rep, f"/{made[1]['google_id']}", json={"summary": "E1 again"})
        await stack.seed("POST", rep, json={"summary": "New in Google", **GOOGLE_HOUR})

        async def in_step() -> bool:
            google = {event["id"]: event for event in await stack.google_events(rep)}
            return await mirror_of(stack, rep) == google

        await eventually(in_step)
    lists = await stack.calls(rep, "calendar.events.list")
    assert 410 in [call["status"] for call in lists]
    assert await stack.published("calendar.event.cancelled", made[0]["id"])
    assert len(await stack.published("calendar.event.cancelled", made[1]["id"])) == 0


async def test_a_notification_with_a_bad_token_is_refused_and_queues_nothing(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as calendar:
        channel = await watch(stack, calendar, rep)
        before = len(await stack.calls(rep, "calendar.events.list"))
        forged = channel_token(b"not-our-secret-not-our-secret-not-our", channel["id"])
        for token in ("wrong", forged, channel_token(DEV_CHANNEL_SECRET.encode(), "other")):
            refused = await notify(calendar, channel, "exists", token=token)
            assert refused.status_code == 401
            assert refused.headers["content-type"] == "application/problem+json"
        bare = await calendar.client.post(WEBHOOK_PATH)
        assert bare.status_code == 401
        assert not await _pending(stack, rep)
        sync = await notify(calendar, channel, "sync")
        assert sync.status_code == 200
        assert sync.content == b""
        assert not await _pending(stack, rep)
        await calendar.run_job("calendar.renew-channels")  # any work left would surface
    assert len(await stack.calls(rep, "calendar.events.list")) == before


async def test_notifications_during_a_blocked_sync_cause_exactly_one_follow_up(
    stack: Any, users: Users
) -> None:
    """Two processes receive notifications while a sync is held up in Google: one more sync
    runs after it, not one per notification."""
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as first, stack.start() as second:
        channel = await watch(stack, first, rep)
        await eventually(lambda: _idle(stack, rep))
        before = len(await incremental_lists(stack, rep))
        # The sync's listing is held in Google until the test releases it (clearing the fault).
        await stack.google.admin(
            "POST",
            "/faults",
            json={
                "api_method": "calendar.events.list",
                "status": 0,
                "latency_ms": 600_000,
                "user": rep.principal.email,
            },
        )
        try:
            assert (await notify(first, channel, "exists")).status_code == 200
            await eventually(lambda: _running(stack, rep))
            for index in range(6):
                target = first if index % 2 else second
                assert (await notify(target, channel, "exists")).status_code == 200
            # Still blocked: the held-up call has not been answered (logged) yet.
            assert len(await incremental_lists(stack, rep)) == before
        finally:
            await stack.google.admin("DELETE", "/faults")
        # Once nothing is pending or running, every sync there will be has logged its listing.
        await eventually(lambda: _idle(stack, rep), within=30)
    assert len(await incremental_lists(stack, rep)) == before + 2


async def _syncs_of(stack: Any, user: ActingUser, condition: str) -> int:
    """How many of the user's sync requests meet ``condition``."""
    account = SyncKey("calendar", user.principal.org_id, user.sub)
    found: int = await stack.scalar(
        "SELECT count(*) FROM calendar.work_requests"
        f" WHERE starts_with(key, :prefix) AND ({condition})",
        prefix=f"{account}:",
    )
    return found


async def _pending(stack: Any, user: ActingUser) -> bool:
    return bool(await _syncs_of(stack, user, "pending"))


async def _idle(stack: Any, user: ActingUser) -> bool:
    return await _syncs_of(stack, user, "pending OR lease_until IS NOT NULL") == 0


async def _running(stack: Any, user: ActingUser) -> bool:
    return bool(await _syncs_of(stack, user, "lease_until IS NOT NULL"))


async def emulator_now(stack: Any) -> datetime:
    answer = await stack.google.admin("GET", "/clock")
    return datetime.fromisoformat(answer.json()["now"].replace("Z", "+00:00")).astimezone(UTC)


async def test_renewal_under_controlled_clocks_leaves_no_expired_channel(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    clock = ManualClock(await emulator_now(stack))
    moved = timedelta(0)

    async def advance(delta: timedelta) -> None:
        nonlocal moved
        clock.advance(delta)
        await stack.google.admin("POST", "/clock", json={"advance_seconds": delta.total_seconds()})
        moved += delta

    try:
        async with stack.start(
            clock, channel_ttl_seconds=3600, channel_renew_before_seconds=600
        ) as calendar:
            old = await watch(stack, calendar, rep)
            await advance(timedelta(minutes=40))
            assert (await calendar.run_job("calendar.renew-channels"))["result"] == 0
            await advance(timedelta(minutes=15))
            assert (await calendar.run_job("calendar.renew-channels"))["result"] == 1
            await advance(timedelta(minutes=10))  # the old channel's expiry has passed
            channels = (await stack.google.admin("GET", "/calendar/channels")).json()["channels"]
            mine = [c for c in channels if c["owner"] == rep.principal.email]
            assert {c["id"]: c["stopped"] for c in mine}[old["id"]] is True
            live = [c for c in mine if not c["stopped"]]
            assert len(live) == 1
            assert live[0]["expired"] is False
            expired_but_active = await stack.scalar(
                "SELECT count(*) FROM calendar.push_channels WHERE user_id = :user "
                "AND stopped_at IS NULL AND expires_at <= :now",
                user=rep.sub,
                now=clock.now(),
            )
            assert expired_but_active == 0
            seeded = await stack.seed("POST", rep, json={"summary": "After renewal", **GOOGLE_HOUR})

            async def mirrored() -> Any:
                return await stack.scalar(
                    "SELECT count(*) FROM calendar.events WHERE google_id = :id", id=seeded["id"]
                )

            await eventually(mirrored)
            deliveries = (await stack.google.admin("GET", "/calendar/deliveries")).json()
            to_live = [d for d in deliveries["deliveries"] if d["channel_id"] == live[0]["id"]]
            assert [d["status_code"] for d in to_live if d["state"] == "exists"] == [200]
    finally:
        await stack.google.admin("POST", "/clock", json={"advance_seconds": -moved.total_seconds()})


async def test_the_sync_token_is_stored_only_after_the_last_page(stack: Any, users: Users) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as calendar:
        for n in range(3):
            await calendar.client.post(
                "/api/calendar/events", json={**HOUR, "title": f"Old {n}"}, headers=rep.headers
            )
        calendar_id = await stack.scalar(
            "SELECT id FROM calendar.calendars WHERE user_id = :user", user=rep.sub
        )
    engine = create_async_engine(stack.database_url)
    policy = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02)
    try:
        async with stack.google.credentials("calendar") as provider:
            api = GoogleApi(
                "calendar",
                "v3",
                credentials=provider,
                scopes=PRODUCT_SCOPES["calendar"],
                root_url=stack.google.root_url,
                policy=policy,
            )
            uow = UnitOfWork(create_sessionmaker(engine))
            sync = CalendarSync(uow, CalendarGoogle(api), SystemClock(), page_size=2)
            full = await sync.sync(calendar_id)
            assert (full.full, full.pages) == (True, 2)
            first_token = await sync_token(stack, rep)
            assert first_token is not None
            for n in range(3):
                await stack.seed("POST", rep, json={"summary": f"New {n}", **GOOGLE_HOUR})
            for fault in ({"status": 0}, {"status": 500, "count": 2}):
                await stack.google.admin(
                    "POST",
                    "/faults",
                    json={
                        "api_method": "calendar.events.list",
                        "user": rep.principal.email,
                        **fault,
                    },
                )
            try:
                with pytest.raises(GoogleQuotaExhausted):
                    await sync.sync(calendar_id)
            finally:
                await stack.google.admin("DELETE", "/faults")
            assert await sync_token(stack, rep) == first_token
            assert len(await mirror_of(stack, rep)) == 5  # the first page was applied
            again = await sync.sync(calendar_id)
            assert (again.full, again.pages, again.items) == (False, 2, 3)
    finally:
        await engine.dispose()
    firsts = [
        call["query"]["syncToken"]
        for call in await incremental_lists(stack, rep)
        if "pageToken" not in call["query"]
    ]
    assert firsts.count(first_token) == 2
    assert await sync_token(stack, rep) not in (None, first_token)
    assert len(await mirror_of(stack, rep)) == 6


class ChangingBetweenPages(CalendarGoogle):
    """Google, where someone changes an event while the sync is between its first two pages."""

    def __init__(self, api: GoogleApi, change: Callable[[], Awaitable[None]]) -> None:
        super().__init__(api)
        self.change: Callable[[], Awaitable[None]] | None = change

    async def page(self, *args: Any, **kwargs: Any) -> Page[GoogleEvent]:
        answered = await super().page(*args, **kwargs)
        if self.change is not None and kwargs.get("sync_token") is not None:
            change, self.change = self.change, None
            await change()
        return answered


async def test_an_incremental_sync_pages_with_its_token_and_skips_nothing_changed_meanwhile(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as calendar:
        await calendar.client.post(
            "/api/calendar/events", json={**HOUR, "title": "Old"}, headers=rep.headers
        )
        calendar_id = await stack.scalar(
            "SELECT id FROM calendar.calendars WHERE user_id = :user", user=rep.sub
        )
    engine = create_async_engine(stack.database_url)
    try:
        async with stack.google.credentials("calendar") as provider:
            api = GoogleApi(
                "calendar",
                "v3",
                credentials=provider,
                scopes=PRODUCT_SCOPES["calendar"],
                root_url=stack.google.root_url,
            )
            uow = UnitOfWork(create_sessionmaker(engine))
            await CalendarSync(uow, CalendarGoogle(api), SystemClock(), page_size=1).sync(
                calendar_id
            )
            new = [
                await stack.seed("POST", rep, json={"summary": f"New {n}", **GOOGLE_HOUR})
                for n in range(4)
            ]

            async def move_the_first() -> None:
                await stack.seed(
                    "PATCH", rep, f"/{new[0]['id']}", json={"summary": "New 0 (moved)"}
                )

            google = ChangingBetweenPages(api, move_the_first)
            sync = CalendarSync(uow, google, SystemClock(), page_size=1)
            listed = await sync.sync(calendar_id)
            assert (listed.full, listed.pages, listed.items) == (False, 4, 4)
            assert {g["id"] for g in new} <= set(await mirror_of(stack, rep))
            await sync.sync(calendar_id)
    finally:
        await engine.dispose()
    mirror = await mirror_of(stack, rep)
    assert {g["id"] for g in new} <= set(mirror)
    assert mirror[new[0]["id"]]["summary"] == "New 0 (moved)"
    pages = [call["query"] for call in await stack.calls(rep, "calendar.events.list")]
    continued = [query for query in pages if "pageToken" in query]
    assert continued
    assert all("syncToken" in query for query in continued)
    assert {query["maxResults"] for query in pages} == {"1"}


async def test_disconnecting_google_stops_the_users_channels(stack: Any, users: Users) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as calendar:
        channel = await watch(stack, calendar, rep)
        async with httpx.AsyncClient(base_url=stack.google.accounts_url) as accounts:
            gone = await accounts.delete("/api/accounts/google", headers=rep.headers)
            assert gone.status_code == 204

        async def stopped() -> Any:
            return await stack.scalar(
                "SELECT stopped_at FROM calendar.push_channels WHERE id = :id", id=channel["id"]
            )

        await eventually(stopped)
        ignored = await notify(calendar, channel, "exists")
        assert ignored.status_code == 200
        assert await _idle(stack, rep)
        listed = await calendar.client.get("/api/calendar/events", headers=rep.headers)
        assert listed.status_code == 200  # the mirror stays readable


async def live_channels(stack: Any, user: ActingUser) -> int:
    found: int = await stack.scalar(
        "SELECT count(*) FROM calendar.push_channels WHERE user_id = :user AND stopped_at IS NULL",
        user=user.sub,
    )
    return found


async def in_step_with_google(stack: Any, user: ActingUser) -> bool:
    google = {event["id"]: event for event in await stack.google_events(user)}
    return await mirror_of(stack, user) == google


async def test_a_resync_asked_of_the_accounts_service_rebuilds_the_mirror_equal_to_google(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as calendar:
        made = [
            (
                await calendar.client.post(
                    "/api/calendar/events", json={**HOUR, "title": f"E{n}"}, headers=rep.headers
                )
            ).json()
            for n in range(3)
        ]
        await watch(stack, calendar, rep)
        # The mirror drifted from Google: a row lost, a row stale.
        await stack.execute("DELETE FROM calendar.events WHERE id = :id", id=made[0]["id"])
        await stack.execute(
            "UPDATE calendar.events SET etag = 'stale', summary = 'stale',"
            ' resource = resource || \'{"summary": "stale"}\' WHERE id = :id',
            id=made[1]["id"],
        )
        assert not await in_step_with_google(stack, rep)
        listed = len(await stack.calls(rep, "calendar.events.list"))
        async with httpx.AsyncClient(base_url=stack.google.accounts_url) as accounts:
            started = await accounts.post(
                "/api/accounts/google/health/calendar/resync", headers=rep.headers
            )
        assert started.status_code == 202, started.text
        assert started.json() == {"user_id": rep.sub, "product": "calendar", "syncs": 1}
        await eventually(lambda: in_step_with_google(stack, rep))
    reads = (await stack.calls(rep, "calendar.events.list"))[listed:]
    assert reads
    assert all("syncToken" not in call["query"] for call in reads)  # read whole


async def test_reconnecting_google_resumes_push_with_a_full_sync(stack: Any, users: Users) -> None:
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as calendar:
        event = (
            await calendar.client.post(
                "/api/calendar/events", json={**HOUR, "title": "Before"}, headers=rep.headers
            )
        ).json()
        await watch(stack, calendar, rep)
        async with httpx.AsyncClient(base_url=stack.google.accounts_url) as accounts:
            gone = await accounts.delete("/api/accounts/google", headers=rep.headers)
            assert gone.status_code == 204
        await eventually(lambda: live_channels(stack, rep), until=lambda live: live == 0)
        # Meanwhile, in Google.
        await stack.seed("DELETE", rep, f"/{event['google_id']}")
        await stack.seed("POST", rep, json={"summary": "While away", **GOOGLE_HOUR})

        await stack.connect(rep)  # no job runs: the reconnect itself resumes

        await eventually(lambda: in_step_with_google(stack, rep))
        assert await eventually(lambda: live_channels(stack, rep)) == 1
        pushed = await stack.seed("POST", rep, json={"summary": "After", **GOOGLE_HOUR})

        async def mirrored() -> Any:
            return await stack.scalar(
                "SELECT count(*) FROM calendar.events WHERE google_id = :id", id=pushed["id"]
            )

        await eventually(mirrored)  # through the new channel's notification
        health = await eventually(
            lambda: stack.health(rep), until=lambda h: h.get("state") == "idle"
        )
        assert health["last_error"] is None


async def mirrored_summary(stack: Any, google_id: str) -> str | None:
    summary: str | None = await stack.scalar(
        "SELECT resource->>'summary' FROM calendar.events WHERE google_id = :google_id",
        google_id=google_id,
    )
    return summary


async def test_control_characters_from_google_are_dropped_and_the_sync_goes_on(
    stack: Any, users: Users
) -> None:
    """An event written straight into Google with a NUL in its summary is mirrored without it;
    later changes keep arriving."""
    rep = users.make(Role.REP)
    await stack.connect(rep)
    async with stack.start() as calendar:
        channel = await watch(stack, calendar, rep)
        dirty = await stack.seed(
            "POST", rep, json={"summary": "Call\u0000 with\u0007 Bob\n\tagenda", **GOOGLE_HOUR}
        )
        await notify(calendar, channel, "exists")
        assert await eventually(lambda: mirrored_summary(stack, dirty["id"])) == (
            "Call with Bob\n\tagenda"
        )
        later = await stack.seed("POST", rep, json={"summary": "Later", **GOOGLE_HOUR})
        await notify(calendar, channel, "exists")
        assert await eventually(lambda: mirrored_summary(stack, later["id"])) == "Later"
        health = await eventually(
            lambda: stack.health(rep), until=lambda health: health.get("state") == "idle"
        )
        assert health["last_error"] is None
