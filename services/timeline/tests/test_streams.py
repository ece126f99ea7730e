"""Live timelines: single-use tickets, Server-Sent Events through the gateway, resumable, fed by
LISTEN/NOTIFY so a change handled by one timeline process reaches a stream served by another."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest

from pipedesk_common.auth import Role
from pipedesk_common.clock import ManualClock, SystemClock
from pipedesk_common.db import connect_raw
from pipedesk_gateway.app import build_app as build_gateway
from pipedesk_gateway.settings import GatewaySettings
from pipedesk_testkit.identities import Users
from pipedesk_testkit.plugin import OpenService
from pipedesk_testkit.servers import free_port, run_process, serve_in_thread
from timeline_service.app import build_app
from timeline_service.repository import Query, Viewer, changed_items
from timeline_service.settings import TimelineSettings

pytestmark = pytest.mark.asyncio

DELIVERY_LIMIT_SECONDS = 10


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The events of a stream as dicts: ``event``, ``id`` (or None) and ``data``."""
    event: dict[str, Any] = {"event": "message", "id": None, "data": []}
    async for line in response.aiter_lines():
        if line == "":
            if event["data"]:
                yield {**event, "data": json.loads("\n".join(event["data"]))}
            event = {"event": "message", "id": None, "data": []}
        elif line.startswith(":") or line.startswith("retry:"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                event["data"].append(value)
            else:
                event[name] = value


async def next_item(events: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
    async with asyncio.timeout(DELIVERY_LIMIT_SECONDS):
        while True:
            event = await anext(events)
            if event["event"] == "item":
                return event


async def tickets_expiring(database_url: str, now: datetime) -> tuple[int, int]:
    """How many stored tickets expired before ``now``, and how many expire after it."""
    connection = await connect_raw(database_url)
    try:
        row = await connection.fetchrow(
            "SELECT count(*) FILTER (WHERE expires_at < $1) AS expired,"
            " count(*) FILTER (WHERE expires_at > $1) AS live FROM timeline.stream_tickets",
            now,
        )
    finally:
        await connection.close()
    assert row is not None
    return row["expired"], row["live"]


async def ticket_for(client: httpx.AsyncClient, user: Any, lead: str) -> str:
    response = await client.post(f"/api/timeline/lead/{lead}/stream-ticket", headers=user.headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["stream_url"].endswith(body["ticket"])
    ticket: str = body["ticket"]
    return ticket


@pytest.mark.slow
async def test_a_stream_through_the_gateway_gets_items_handled_by_another_timeline_process(
    service_env: dict[str, str], users: Users, feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = users.make(Role.REP, teams=["t1"])
    lead = str(uuid4())
    streaming_port, consuming_port = free_port(), free_port()
    streaming_url = f"http://127.0.0.1:{streaming_port}"
    consuming_url = f"http://127.0.0.1:{consuming_port}"
    env = {**service_env, "CRM_URL": "http://127.0.0.1:9"}
    with (
        run_process(
            ["-m", "timeline_service"],
            env={**env, "TIMELINE_PORT": str(consuming_port)},
            ready_url=f"{consuming_url}/readyz",
        ),
        run_process(
            ["-m", "timeline_service"],
            env={**env, "TIMELINE_PORT": str(streaming_port), "CONSUMERS_ENABLED": "false"},
            ready_url=f"{streaming_url}/readyz",
        ),
    ):
        monkeypatch.setenv("TIMELINE_URL", streaming_url)
        gateway_app = build_gateway(GatewaySettings(**service_env, sse_heartbeat_seconds=1))
        with serve_in_thread(gateway_app) as gateway_url:
            async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as gateway:
                await feed.send(feed.access("lead", lead, owner))
                ticket = await ticket_for(gateway, owner, lead)
                stream_path = f"/api/timeline/lead/{lead}/stream"
                async with gateway.stream("GET", stream_path, params={"ticket": ticket}) as live:
                    assert live.status_code == 200
                    assert live.headers["content-type"].startswith("text/event-stream")
                    events = sse_events(live)
                    ready = await anext(events)
                    assert ready["event"] == "ready"
                    await feed.publish(feed.item("live-1", title="Live", links=[("lead", lead)]))
                    received = await next_item(events)
                    assert received["data"]["title"] == "Live"
                    assert received["data"]["hidden"] is None
                    last_id = received["id"]
                    assert last_id is not None
                used = await gateway.get(stream_path, params={"ticket": ticket})
                assert used.status_code == 401
                assert used.headers["content-type"] == "application/problem+json"
                # Missed while disconnected, then resumed from the last id seen.
                missed = [
                    feed.item(f"missed-{n}", title=f"Missed {n}", links=[("lead", lead)])
                    for n in (1, 2)
                ]
                await feed.send(missed[0])
                await feed.send(missed[1])
                resumed_ticket = await ticket_for(gateway, owner, lead)
                async with gateway.stream(
                    "GET",
                    stream_path,
                    params={"ticket": resumed_ticket},
                    headers={"Last-Event-ID": last_id},
                ) as resumed:
                    events = sse_events(resumed)
                    titles = [(await next_item(events))["data"]["title"] for _ in missed]
                    assert titles == ["Missed 1", "Missed 2"]
                    await feed.publish(feed.item("live-2", title="After", links=[("lead", lead)]))
                    assert (await next_item(events))["data"]["title"] == "After"


async def test_a_ticket_is_single_use_for_one_record_and_expires_after_60_seconds(
    service_env: dict[str, str], users: Users, feed
) -> None:
    owner = users.make(Role.REP, teams=["t1"])
    lead, other_lead = str(uuid4()), str(uuid4())
    clock = ManualClock(SystemClock().now())
    settings = TimelineSettings(**service_env)
    with serve_in_thread(build_app(settings, clock=clock)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as timeline:
            await feed.send(
                feed.access("lead", lead, owner), feed.access("lead", other_lead, owner)
            )
            expiring = await ticket_for(timeline, owner, lead)
            lasting = await ticket_for(timeline, owner, lead)
            foreign = await ticket_for(timeline, owner, other_lead)
            clock.advance(timedelta(seconds=59))
            wrong_record = await timeline.get(
                f"/api/timeline/lead/{lead}/stream", params={"ticket": foreign}
            )
            assert wrong_record.status_code == 401
            # at 59 seconds a ticket still opens its stream…
            path = f"/api/timeline/lead/{lead}/stream"
            async with timeline.stream("GET", path, params={"ticket": lasting}) as opened:
                assert opened.status_code == 200
                assert (await anext(sse_events(opened)))["event"] == "ready"
            used = await timeline.get(path, params={"ticket": lasting})  # once only
            assert used.status_code == 401
            # a ticket is for its record's type too: the same id as a deal is another record
            as_deal = await timeline.get(
                f"/api/timeline/deal/{lead}/stream", params={"ticket": expiring}
            )
            assert as_deal.status_code == 401
            # …and at 60 it does not
            clock.advance(timedelta(seconds=1))
            for params in ({"ticket": expiring}, {"ticket": "made-up"}, {}):
                response = await timeline.get(f"/api/timeline/lead/{lead}/stream", params=params)
                assert response.status_code == 401, params
            bad_resume = await timeline.get(
                f"/api/timeline/lead/{lead}/stream",
                params={"ticket": await ticket_for(timeline, owner, lead)},
                headers={"Last-Event-ID": "not-a-number"},
            )
            assert bad_resume.status_code == 422
            # "²" is a digit to str.isdigit(), not to int(): refused as well, never a 500
            superscript = await timeline.get(
                f"/api/timeline/lead/{lead}/stream",
                params={"ticket": await ticket_for(timeline, owner, lead)},
                headers={"Last-Event-ID": b"\xb2"},
            )
            assert superscript.status_code == 422
            assert superscript.json()["errors"][0]["field"] == "header.last-event-id"
            # A viewer who loses access while streaming: the stream ends.
            ticket = await ticket_for(timeline, owner, lead)
            late_ticket = await ticket_for(timeline, owner, lead)
            stranger = users.make(Role.REP, teams=["t1"])
            async with timeline.stream("GET", path, params={"ticket": ticket}) as live:
                events = sse_events(live)
                assert (await anext(events))["event"] == "ready"
                await feed.publish(feed.access("lead", lead, stranger, team=None))
                async with asyncio.timeout(DELIVERY_LIMIT_SECONDS):
                    ended = await anext(events)
                assert (ended["event"], ended["data"]) == ("end", {"reason": "access"})
            # …and one who lost it between the ticket and the stream is refused.
            refused = await timeline.get(path, params={"ticket": late_ticket})
            assert refused.status_code == 404
            # Issuing a ticket clears away the expired ones, and only those.
            clock.advance(timedelta(seconds=1))
            expired, live = await tickets_expiring(feed.database_url, clock.now())
            assert expired > 0
            await ticket_for(timeline, stranger, lead)
            assert await tickets_expiring(feed.database_url, clock.now()) == (0, live + 1)


async def test_a_streams_changes_come_oldest_change_first_between_two_versions(
    timeline_app: OpenService, users: Users, feed
) -> None:
    """What a stream reads (``changed_items``): the items changed after the version it last
    sent, in the order they changed (an item changed again comes after the others), at most
    ``limit`` of them, and none past ``up_to``."""
    owner = users.make(Role.REP, teams=["t1"])
    lead = str(uuid4())
    async with timeline_app() as timeline:
        await feed.send(feed.access("lead", lead, owner))
        for event in (
            feed.item("first", title="First", links=[("lead", lead)]),
            feed.item("second", title="Second", links=[("lead", lead)]),
            feed.item("first", version=2, title="First, moved", links=[("lead", lead)]),
        ):
            await feed.send(event)
        context = timeline._transport.app.state.context  # type: ignore[attr-defined]
        query, viewer = Query(record_type="lead", record_id=lead), Viewer(owner.principal)
        async with context.sessionmaker() as session:

            async def changes(after: int, **bounds: Any) -> list[tuple[str, int]]:
                batch = await changed_items(session, query, viewer, after_version=after, **bounds)
                return [(item.title, version) for item, version in batch]

            everything = await changes(0, limit=None)
            assert [title for title, _ in everything] == ["Second", "First, moved"]
            second, moved = (version for _, version in everything)
            assert second < moved
            assert await changes(second, limit=None) == [("First, moved", moved)]
            assert await changes(0, limit=1) == [("Second", second)]
            assert await changes(0, limit=None, up_to=moved - 1) == [("Second", second)]
            assert await changes(second - 1, limit=None, up_to=moved) == everything
            assert await changes(moved, limit=None) == []
