"""The timeline API: only people who may read a record see its timeline."""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import aio_pika
import httpx
import pytest

from crm_service.app import build_app as build_crm
from crm_service.settings import CrmSettings
from pipedesk_common.auth import Role
from pipedesk_common.clock import SystemClock
from pipedesk_common.events import Event, encode_event, new_event
from pipedesk_common.events.crm import AuditRecorded, LeadAccessChanged
from pipedesk_common.events.timeline import (
    ItemKind,
    Link,
    RecordType,
    TimelineProjection,
    TimelineSource,
)
from pipedesk_common.messaging import Topology
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.plugin import OpenService
from pipedesk_testkit.servers import serve_in_thread
from pipedesk_testkit.waiting import eventually

pytestmark = pytest.mark.asyncio


def audit(
    owner: ActingUser, lead_id: str, index: int, kind: ItemKind = ItemKind.AUDIT
) -> Event[Any]:
    clock = SystemClock()
    record = Link(type=RecordType.LEAD, id=lead_id)
    audit_id = str(uuid4())
    data = AuditRecorded(
        id=audit_id,
        record=record,
        action="updated",
        actor_id=owner.sub,
        changes={"title": (f"v{index}", f"v{index + 1}")},
        occurred_at=clock.now(),
        timeline=TimelineProjection(
            kind=kind,
            occurred_at=clock.now(),
            title=f"change {index}",
            links=[record],
            source=TimelineSource(service="crm", key=f"crm:audit:{audit_id}"),
        ),
    )
    return new_event(data, org_id=owner.principal.org_id, actor_id=owner.sub, time=clock.now())


def access(owner: ActingUser, lead_id: str, team: str = "t1") -> Event[Any]:
    data = LeadAccessChanged(
        id=lead_id, version=1, org_id=owner.principal.org_id, owner_id=owner.sub, team_id=team
    )
    return new_event(
        data, org_id=owner.principal.org_id, actor_id=owner.sub, time=SystemClock().now()
    )


async def publish(service_env: dict[str, str], *events: Event[Any]) -> None:
    connection = await aio_pika.connect(service_env["AMQP_URL"])
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await Topology(service_env["BROKER_PREFIX"]).declare_exchange(channel)
        for event in events:
            message = aio_pika.Message(
                encode_event(event), content_type="application/cloudevents+json"
            )
            await exchange.publish(message, routing_key=event.routing_key)
    finally:
        await connection.close()


async def items(
    client: httpx.AsyncClient, user: ActingUser, lead_id: str, **params: Any
) -> dict[str, Any]:
    response = await client.get(
        f"/api/timeline/lead/{lead_id}", params=params, headers=user.headers
    )
    assert response.status_code == 200, response.text
    return response.json()


async def arrived(client: httpx.AsyncClient, user: ActingUser, lead_id: str) -> int:
    """How many items the user sees yet (0 while the lead's events are still on their way)."""
    response = await client.get(f"/api/timeline/lead/{lead_id}", headers=user.headers)
    return len(response.json()["items"]) if response.status_code == 200 else 0


async def test_pages_newest_first_with_kinds_and_a_stable_cursor(
    timeline_app: OpenService, users: Users, service_env: dict[str, str]
) -> None:
    owner = users.make(Role.REP, teams=["t1"])
    lead_id = str(uuid4())
    async with timeline_app() as timeline:
        await publish(
            service_env,
            access(owner, lead_id),
            *(audit(owner, lead_id, index) for index in range(5)),
        )
        await publish(service_env, audit(owner, lead_id, 99, kind=ItemKind.NOTE))
        await eventually(lambda: arrived(timeline, owner, lead_id), until=lambda count: count == 6)
        first = await items(timeline, owner, lead_id, limit=2, kinds="audit")
        titles = [item["title"] for item in first["items"]]
        cursor = first["next_cursor"]
        while cursor:
            page = await items(timeline, owner, lead_id, limit=2, kinds="audit", cursor=cursor)
            titles += [item["title"] for item in page["items"]]
            cursor = page["next_cursor"]
        assert titles == [f"change {index}" for index in reversed(range(5))]
        notes = await items(timeline, owner, lead_id, kinds="note")
        assert [item["title"] for item in notes["items"]] == ["change 99"]
        foreign = await timeline.get(
            f"/api/timeline/lead/{lead_id}",
            params={"limit": 2, "kinds": "note", "cursor": first["next_cursor"]},
            headers=owner.headers,
        )
        assert foreign.status_code == 400


async def test_strangers_and_other_orgs_get_404(
    timeline_app: OpenService, users: Users, service_env: dict[str, str]
) -> None:
    owner = users.make(Role.REP, teams=["t1"])
    lead_id = str(uuid4())
    async with timeline_app() as timeline:
        await publish(service_env, access(owner, lead_id), audit(owner, lead_id, 1))
        await eventually(lambda: arrived(timeline, owner, lead_id), until=lambda count: count == 1)
        manager = users.make(Role.MANAGER, teams=["t1"])
        assert len((await items(timeline, manager, lead_id))["items"]) == 1
        for stranger in (
            users.make(Role.REP, teams=["t1"]),
            users.make(Role.VIEWER, teams=["t2"]),
            users.other_org().make(Role.ADMIN, teams=["t1"]),
        ):
            response = await timeline.get(f"/api/timeline/lead/{lead_id}", headers=stranger.headers)
            assert response.status_code == 404
            assert response.headers["content-type"] == "application/problem+json"


async def test_bad_requests_are_4xx_problems(timeline_app: OpenService, users: Users) -> None:
    user = users.make(Role.ADMIN)
    async with timeline_app() as timeline:
        assert (await timeline.get(f"/api/timeline/lead/{uuid4()}")).status_code == 401
        cases = {
            f"/api/timeline/planet/{uuid4()}": "path.record_type",
            "/api/timeline/lead/not-a-uuid": "path.record_id",
            f"/api/timeline/lead/{uuid4()}?kinds=gossip": "query.kinds.0",
            f"/api/timeline/lead/{uuid4()}?limit=0": "query.limit",
            f"/api/timeline/deal/{uuid4()}?since=yesterday": "query.since",
        }
        for path, field in cases.items():
            response = await timeline.get(path, headers=user.headers)
            assert response.status_code == 422, path
            assert field in {error["field"] for error in response.json()["errors"]}


async def test_a_lead_not_heard_of_yet_is_asked_of_crm_once(
    timeline_app: OpenService, users: Users, service_env: dict[str, str]
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    with serve_in_thread(build_crm(CrmSettings(**service_env))) as crm_url:
        async with httpx.AsyncClient(base_url=crm_url) as crm:
            lead = (
                await crm.post("/api/leads", json={"title": "fresh"}, headers=rep.headers)
            ).json()
        # no consumer: the timeline has not seen this lead's events
        async with timeline_app(CRM_URL=crm_url, CONSUMERS_ENABLED="false") as timeline:
            assert (await items(timeline, rep, lead["id"]))["items"] == []
            stranger = users.make(Role.REP, teams=["t1"])
            response = await timeline.get(
                f"/api/timeline/lead/{lead['id']}", headers=stranger.headers
            )
            assert response.status_code == 404
            missing = await timeline.get(f"/api/timeline/lead/{uuid4()}", headers=rep.headers)
            assert missing.status_code == 404
    async with timeline_app(CRM_URL=crm_url, CONSUMERS_ENABLED="false") as timeline:
        # CRM is gone now: the access list fetched before is kept locally
        assert (await items(timeline, rep, lead["id"]))["items"] == []
        unknown = await timeline.get(f"/api/timeline/lead/{uuid4()}", headers=rep.headers)
        assert unknown.status_code == 503


async def test_pages_have_no_gaps_or_repeats_while_items_arrive_between_requests(
    timeline_app: OpenService, users: Users, feed
) -> None:
    owner = users.make(Role.REP, teams=["t1"])
    lead_id = str(uuid4())
    start = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def at(minutes: int, key: str) -> Any:
        moment = start + timedelta(minutes=minutes)
        return feed.item(key, occurred_at=moment, title=key, links=[("lead", lead_id)])

    async with timeline_app() as timeline:
        # Two items share one occurred_at: the id breaks the tie.
        await feed.send(
            feed.access("lead", lead_id, owner),
            *(at(minutes, f"i{minutes}") for minutes in range(0, 100, 10)),
            at(50, "i50-twin"),
        )
        seen: list[str] = []
        page = await feed.page(timeline, owner, "lead", lead_id, limit=3)
        seen += [item["title"] for item in page["items"]]
        arrivals = iter(
            [
                [at(200, "newest-1"), at(45, "between-unread")],
                [at(95, "above-cursor"), at(201, "newest-2")],
                [at(5, "oldest-unread")],
            ]
        )
        while page["next_cursor"]:
            batch = next(arrivals, [])
            if batch:
                await feed.send(*batch)
            page = await feed.page(
                timeline, owner, "lead", lead_id, limit=3, cursor=page["next_cursor"]
            )
            seen += [item["title"] for item in page["items"]]
        assert len(seen) == len(set(seen))
        originals = {f"i{minutes}" for minutes in range(0, 100, 10)} | {"i50-twin"}
        assert originals <= set(seen)
        # Items older than the cursor show up; items newer than it wait for the next first page.
        assert {"between-unread", "oldest-unread"} <= set(seen)
        assert not {"newest-1", "newest-2", "above-cursor"} & set(seen)
        first = await feed.page(timeline, owner, "lead", lead_id, limit=2)
        assert [item["title"] for item in first["items"]] == ["newest-2", "newest-1"]


async def test_filters_by_time_range_kinds_and_text(
    timeline_app: OpenService, users: Users, feed
) -> None:
    owner = users.make(Role.REP, teams=["t1"])
    lead_id = str(uuid4())
    day = datetime(2026, 4, 1, tzinfo=UTC)
    async with timeline_app() as timeline:
        await feed.send(
            feed.access("lead", lead_id, owner),
            feed.item("a", occurred_at=day, title="Kickoff 100%", links=[("lead", lead_id)]),
            feed.item(
                "b",
                kind="email",
                service="gmail",
                occurred_at=day + timedelta(days=1),
                title="Pricing \\ terms",
                summary="The KICKOFF notes",
                links=[("lead", lead_id)],
                event_type="pipedesk.partner.message.received.v1",
            ),
            feed.item("c", kind="task", service="tasks", occurred_at=day + timedelta(days=2),
                      title="Send contract_v2", links=[("lead", lead_id)],
                      event_type="pipedesk.partner.todo.updated.v1", status="deleted"),
        )  # fmt: skip

        async def keys(**params: Any) -> list[str]:
            page = await feed.page(timeline, owner, "lead", lead_id, **params)
            return [item["source"]["google_id"] for item in page["items"]]

        assert await keys() == ["c", "b", "a"]
        assert await keys(q="kickoff") == ["b", "a"]
        assert await keys(q="100%") == ["a"]
        assert await keys(q="%") == ["a"]
        assert await keys(q="_") == ["c"]  # an underscore is itself, not any one character
        assert await keys(q="\\") == ["b"]  # a backslash is itself, not an escape
        assert await keys(kinds=["meeting", "email"]) == ["b", "a"]
        since = (day + timedelta(days=1)).isoformat()
        until = (day + timedelta(days=2)).isoformat()
        assert await keys(since=since) == ["c", "b"]
        assert await keys(until=until) == ["b", "a"]
        assert await keys(since=since, until=until) == ["b"]
        [task] = (await feed.page(timeline, owner, "lead", lead_id, kinds="task"))["items"]
        assert task["status"] == "deleted"
        for params, field in (
            ({"since": "2026-04-01T00:00:00"}, "query.since"),
            ({"since": until, "until": since}, "query.until"),
            ({"q": ""}, "query.q"),
        ):
            response = await timeline.get(
                f"/api/timeline/lead/{lead_id}", params=params, headers=owner.headers
            )
            assert response.status_code == 422, params
            assert field in {error["field"] for error in response.json()["errors"]}
        page = await feed.page(timeline, owner, "lead", lead_id, limit=1, q="kickoff")
        other_query = await timeline.get(
            f"/api/timeline/lead/{lead_id}",
            params={"limit": 1, "q": "pricing", "cursor": page["next_cursor"]},
            headers=owner.headers,
        )
        assert other_query.status_code == 400
