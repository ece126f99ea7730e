"""The services as real processes: what a deployment runs, killed the way a deployment dies."""

import asyncio
import signal
from typing import Any
from uuid import uuid4

import aio_pika
import httpx
import pytest

from pipedesk_common.auth import Role
from pipedesk_common.clock import SystemClock
from pipedesk_common.db import connect_raw
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
from pipedesk_testkit.identities import Users
from pipedesk_testkit.servers import free_port, run_process
from pipedesk_testkit.waiting import eventually

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


def process_env(service_env: dict[str, str], **extra: str) -> dict[str, str]:
    return {**service_env, "LOG_LEVEL": "WARNING", **extra}


async def item_counts(database_url: str, org_id: str) -> tuple[int, int]:
    connection = await connect_raw(database_url)
    try:
        row = await connection.fetchrow(
            "SELECT count(*) AS items, count(DISTINCT h.source_key) AS distinct_items "
            "FROM timeline.items i JOIN timeline.holders h ON h.item_id = i.id "
            "WHERE i.org_id = $1",
            org_id,
        )
    finally:
        await connection.close()
    assert row is not None
    return int(row["items"]), int(row["distinct_items"])


async def test_a_lead_created_in_the_crm_process_appears_in_the_timeline_process(
    service_env: dict[str, str], users: Users
) -> None:
    crm_port, timeline_port = free_port(), free_port()
    crm_url, timeline_url = f"http://127.0.0.1:{crm_port}", f"http://127.0.0.1:{timeline_port}"
    env = process_env(
        service_env, CRM_PORT=str(crm_port), TIMELINE_PORT=str(timeline_port), CRM_URL=crm_url
    )
    rep = users.make(Role.REP, teams=["t1"])
    with (
        run_process(["-m", "timeline_service"], env=env, ready_url=f"{timeline_url}/readyz"),
        run_process(["-m", "crm_service"], env=env, ready_url=f"{crm_url}/readyz"),
    ):
        async with httpx.AsyncClient() as http:
            created = await http.post(
                f"{crm_url}/api/leads", json={"title": "Across processes"}, headers=rep.headers
            )
            assert created.status_code == 201
            lead_id = created.json()["id"]

            async def timeline_titles() -> list[str]:
                response = await http.get(
                    f"{timeline_url}/api/timeline/lead/{lead_id}", headers=rep.headers
                )
                return (
                    [item["title"] for item in response.json().get("items", [])]
                    if response.status_code == 200
                    else []
                )

            assert await eventually(timeline_titles) == ["Lead created"]


async def ready_messages(service_env: dict[str, str]) -> int:
    """How many messages wait in the timeline's queue, not yet delivered to a consumer."""
    connection = await aio_pika.connect(service_env["AMQP_URL"])
    try:
        channel = await connection.channel()
        name = Topology(service_env["BROKER_PREFIX"]).queue("timeline.items")
        queue = await channel.declare_queue(name, passive=True)
        return int(queue.declaration_result.message_count or 0)
    finally:
        await connection.close()


def audit_event(org: str, lead_id: str, index: int) -> Event[Any]:
    clock = SystemClock()
    record = Link(type=RecordType.LEAD, id=lead_id)
    data = AuditRecorded(
        id=str(uuid4()),
        record=record,
        action="updated",
        actor_id="u1",
        occurred_at=clock.now(),
        timeline=TimelineProjection(
            kind=ItemKind.AUDIT,
            occurred_at=clock.now(),
            title=f"change {index}",
            links=[record],
            source=TimelineSource(service="crm", key=f"crm:audit:{lead_id}:{index}"),
        ),
    )
    return new_event(data, org_id=org, actor_id="u1", time=clock.now())


async def test_a_consumer_killed_mid_batch_loses_nothing_and_doubles_nothing(
    service_env: dict[str, str], database_url: str
) -> None:
    org, lead_id, total = f"org-{uuid4().hex[:8]}", str(uuid4()), 600
    port = free_port()
    env = process_env(service_env, TIMELINE_PORT=str(port))
    ready_url = f"http://127.0.0.1:{port}/readyz"
    with run_process(["-m", "timeline_service"], env=env, ready_url=ready_url) as first:
        connection = await aio_pika.connect(service_env["AMQP_URL"])
        try:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await Topology(service_env["BROKER_PREFIX"]).declare_exchange(channel)
            access = LeadAccessChanged(
                id=lead_id, version=1, org_id=org, owner_id="u1", team_id="t1"
            )
            events = [new_event(access, org_id=org, actor_id="u1", time=SystemClock().now())]
            events += [audit_event(org, lead_id, index) for index in range(total)]
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            encode_event(event),
                            content_type="application/cloudevents+json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key=event.routing_key,
                    )
                    for event in events
                )
            )
        finally:
            await connection.close()
        processed = await eventually(
            lambda: item_counts(database_url, org), until=lambda counts: counts[0] >= 20
        )
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert processed[0] < total, "the consumer finished before it could be killed mid-batch"
    with run_process(["-m", "timeline_service"], env=env, ready_url=ready_url) as second:
        counts = await eventually(
            lambda: item_counts(database_url, org),
            until=lambda counts: counts[0] >= total,
            within=60,
        )
        # Every message, the redeliveries of what was in flight included, has been taken…
        await eventually(lambda: ready_messages(service_env), until=lambda ready: ready == 0)
        second.terminate()  # …and a clean stop finishes those in hand before it exits.
        # uvicorn shuts down, then raises the signal again: the exit is the signal's
        assert await asyncio.to_thread(second.wait, 30) in (0, -signal.SIGTERM)
    assert await ready_messages(service_env) == 0
    # the redeliveries added nothing
    assert await item_counts(database_url, org) == (total, total)
    assert counts == (total, total)
