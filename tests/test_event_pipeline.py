"""A change committed in CRM reaches the timeline exactly once, whatever the broker does."""

import asyncio
import re
from typing import Any
from uuid import uuid4

import aio_pika
import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from crm_service.app import build_app as build_crm
from crm_service.models import outbox
from crm_service.repository import LeadRepository
from crm_service.schemas import LeadCreate
from crm_service.service import LeadService
from crm_service.settings import CrmSettings
from pipedesk_common.auth import Role
from pipedesk_common.clock import SystemClock
from pipedesk_common.db import create_sessionmaker
from pipedesk_common.events import decode_event, new_event
from pipedesk_common.events.crm import LeadAccessChanged
from pipedesk_common.messaging import Topology
from pipedesk_common.observability import configure_tracing
from pipedesk_common.outbox import add_event
from pipedesk_testkit.identities import Users
from pipedesk_testkit.plugin import OpenService
from pipedesk_testkit.proxy import tcp_proxy
from pipedesk_testkit.servers import serve_in_thread
from pipedesk_testkit.waiting import eventually

pytestmark = pytest.mark.asyncio


async def timeline_of(client: httpx.AsyncClient, user: Any, lead_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/timeline/lead/{lead_id}", headers=user.headers)
    return response.json()["items"] if response.status_code == 200 else []


async def test_a_lead_and_its_changes_appear_in_its_timeline(
    crm_app: OpenService, timeline_app: OpenService, users: Users, own_broker_prefix: str
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    own = {"BROKER_PREFIX": own_broker_prefix}
    async with timeline_app(**own) as timeline, crm_app(**own) as crm:
        lead = (await crm.post("/api/leads", json={"title": "Acme"}, headers=rep.headers)).json()
        await crm.patch(
            f"/api/leads/{lead['id']}", json={"status": "contacted"}, headers=rep.headers
        )
        items = await eventually(
            lambda: timeline_of(timeline, rep, lead["id"]), until=lambda found: len(found) == 2
        )
        assert [item["title"] for item in items] == ["Lead updated", "Lead created"]
        assert items[0]["summary"] == "status: new → contacted"
        assert items[0]["kind"] == "audit"
        assert items[0]["actor_id"] == rep.sub
        assert items[0]["links"] == [{"type": "lead", "id": lead["id"]}]
        path = f"/api/timeline/lead/{lead['id']}"
        assert (
            await timeline.get(path, headers=users.make(Role.VIEWER, teams=["t1"]).headers)
        ).status_code == 200
        for stranger in (users.make(Role.REP, teams=["t1"]), users.other_org().make(Role.ADMIN)):
            refused = await timeline.get(path, headers=stranger.headers)
            assert refused.status_code == 404
            assert refused.headers["content-type"] == "application/problem+json"


async def events_of(session: AsyncSession, lead_id: str) -> set[str]:
    """The routing keys of the pending outbox rows about one lead that this session sees."""
    rows = await session.execute(
        select(outbox.c.routing_key, outbox.c.body).where(outbox.c.status == 0)
    )
    found = set()
    for routing_key, body in rows:
        data = decode_event(body).data.model_dump(mode="json")
        if lead_id in (data.get("id"), (data.get("record") or {}).get("id")):
            found.add(routing_key)
    return found


async def test_a_rolled_back_change_is_never_published(
    timeline_app: OpenService, users: Users, database_url: str, service_env: dict[str, str]
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    engine = create_async_engine(database_url)
    crm_process = build_crm(CrmSettings(**service_env))
    try:
        with serve_in_thread(crm_process) as crm_url:
            async with (
                timeline_app(CRM_URL=crm_url) as timeline,
                httpx.AsyncClient(base_url=crm_url) as crm,
            ):
                async with create_sessionmaker(engine)() as session:
                    service = LeadService(LeadRepository(session), SystemClock())
                    doomed = await service.create(rep.principal, LeadCreate(title="never happened"))
                    # the lead's events were written, in this transaction
                    assert await events_of(session, str(doomed.id)) == {
                        "crm.lead.created",
                        "crm.lead.access_changed",
                        "crm.audit.recorded",
                    }
                    await session.rollback()
                kept = (
                    await crm.post("/api/leads", json={"title": "kept"}, headers=rep.headers)
                ).json()
                await eventually(lambda: timeline_of(timeline, rep, kept["id"]))
                async with create_sessionmaker(engine)() as session:
                    bodies = (await session.execute(select(outbox.c.body))).scalars().all()
                published = {decode_event(body).data.model_dump().get("id") for body in bodies}
                assert str(doomed.id) not in published
                assert kept["id"] in published
                admin = users.make(Role.ADMIN)
                missing = await timeline.get(
                    f"/api/timeline/lead/{doomed.id}", headers=admin.headers
                )
                assert missing.status_code == 404
    finally:
        await engine.dispose()


async def backlog(client: httpx.AsyncClient) -> float:
    metrics = (await client.get("/metrics")).text
    match = re.search(r'^pipedesk_outbox_backlog\{service="crm"\} (\S+)$', metrics, re.MULTILINE)
    return float(match.group(1)) if match else -1.0


async def test_writes_succeed_while_the_broker_is_cut_off_and_every_event_arrives_after(
    crm_app: OpenService,
    timeline_app: OpenService,
    users: Users,
    service_env: dict[str, str],
    own_broker_prefix: str,
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    amqp = aio_pika.connection.URL(service_env["AMQP_URL"])
    with tcp_proxy(amqp.host or "127.0.0.1", amqp.port or 5672) as proxy:
        proxied = str(amqp.with_host("127.0.0.1").with_port(proxy.port))
        own = {"BROKER_PREFIX": own_broker_prefix}
        async with timeline_app(**own) as timeline, crm_app(AMQP_URL=proxied, **own) as crm:
            proxy.cut()
            created = []
            for index in range(5):
                response = await crm.post(
                    "/api/leads", json={"title": f"offline {index}"}, headers=rep.headers
                )
                assert response.status_code == 201
                created.append(response.json()["id"])
            assert await eventually(lambda: backlog(crm), until=lambda value: value >= 15) >= 15
            # The relay keeps trying while the broker is unreachable: nothing may be lost.
            tries = proxy.connections_refused
            await eventually(
                lambda: asyncio.sleep(0, proxy.connections_refused),
                until=lambda refused: refused >= tries + 2,
            )
            assert await backlog(crm) >= 15
            proxy.restore()
            for lead_id in created:
                await eventually(lambda lead_id=lead_id: timeline_of(timeline, rep, lead_id))
            assert await eventually(lambda: backlog(crm), until=lambda value: value == 0) == 0


async def raw_queue(service_env: dict[str, str], routing_key: str) -> tuple[Any, Any]:
    connection = await aio_pika.connect(service_env["AMQP_URL"])
    channel = await connection.channel()
    exchange = await Topology(service_env["BROKER_PREFIX"]).declare_exchange(channel)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, routing_key=routing_key)
    return connection, queue


async def collected(queue: Any) -> list[str]:
    """The ids of the events waiting in the queue, taken out of it."""
    ids: list[str] = []
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        ids.append(str(decode_event(message.body).id))
    return ids


async def drain(queue: Any, expected: int) -> list[str]:
    """At least ``expected`` events from the queue. A duplicate arriving later is in the queue
    once the relays have stopped: a confirmed publish is already queued."""
    ids: list[str] = []

    async def collect() -> int:
        ids.extend(await collected(queue))
        return len(ids)

    await eventually(collect, until=lambda count: count >= expected)
    return ids


async def test_two_relays_publish_each_row_exactly_once(
    crm_app: OpenService, users: Users, service_env: dict[str, str]
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    connection, queue = await raw_queue(service_env, "crm.lead.created")
    try:
        async with crm_app() as first, crm_app() as second:
            requests = [
                client.post("/api/leads", json={"title": f"lead {index}"}, headers=rep.headers)
                for index in range(30)
                for client in (first, second)
            ]
            responses = await asyncio.gather(*requests)
            assert all(response.status_code == 201 for response in responses)
            ids = await drain(queue, 60)
        ids += await collected(queue)  # both relays have stopped: nothing more can come
        assert len(ids) == 60
        assert len(set(ids)) == 60
    finally:
        await connection.close()


async def test_a_row_committed_late_is_still_delivered(
    crm_app: OpenService, service_env: dict[str, str], database_url: str
) -> None:
    connection, queue = await raw_queue(service_env, "crm.lead.access_changed")
    engine = create_async_engine(database_url)
    sessions = create_sessionmaker(engine)

    def access_event(org: str) -> Any:
        data = LeadAccessChanged(id=str(uuid4()), version=1, org_id=org, owner_id="u", team_id=None)
        return new_event(data, org_id=org, actor_id="u", time=SystemClock().now())

    try:
        async with crm_app():
            async with sessions() as early, sessions() as late:
                held = access_event("org-held")
                await add_event(early, outbox, held)  # takes the lower id, commits last
                await early.flush()
                quick = access_event("org-quick")
                await add_event(late, outbox, quick)
                await late.commit()
                assert await drain(queue, 1) == [str(quick.id)]
                await early.commit()
            assert await drain(queue, 1) == [str(held.id)]
        assert await collected(queue) == []  # the relay has stopped: each was sent once
    finally:
        await connection.close()
        await engine.dispose()


async def test_one_trace_runs_from_the_request_to_the_timeline_consumer(
    crm_app: OpenService, timeline_app: OpenService, users: Users, own_broker_prefix: str
) -> None:
    exporter = InMemorySpanExporter()
    configure_tracing("tests").add_span_processor(SimpleSpanProcessor(exporter))
    rep = users.make(Role.REP, teams=["t1"])
    trace_id = uuid4().hex
    headers = {**rep.headers, "traceparent": f"00-{trace_id}-{uuid4().hex[:16]}-01"}
    own = {"BROKER_PREFIX": own_broker_prefix}
    async with timeline_app(**own) as timeline, crm_app(**own) as crm:
        lead = (await crm.post("/api/leads", json={"title": "traced"}, headers=headers)).json()
        await eventually(lambda: timeline_of(timeline, rep, lead["id"]))

    def consumer_spans() -> list[Any]:
        return [
            span
            for span in exporter.get_finished_spans()
            if span.name.startswith("consume crm.audit.recorded")
            and format(span.context.trace_id, "032x") == trace_id
        ]

    async def finished() -> list[Any]:
        return consumer_spans()

    assert await eventually(finished)
    http_spans = [
        span
        for span in exporter.get_finished_spans()
        if span.name == "POST /api/leads" and format(span.context.trace_id, "032x") == trace_id
    ]
    assert http_spans
