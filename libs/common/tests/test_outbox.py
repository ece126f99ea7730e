"""The relay against a broker that refuses some publishes: a row is marked sent only once the
broker has confirmed it, so a refused or unconfirmed event stays pending and goes out later."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import aio_pika
import pytest
import pytest_asyncio
from aio_pika.abc import AbstractChannel, AbstractQueue
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from prometheus_client import REGISTRY
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from pipedesk_common.clock import SystemClock
from pipedesk_common.db import connect_raw, create_sessionmaker
from pipedesk_common.events import Event, decode_event, new_event
from pipedesk_common.events.crm import DealAccessChanged, LeadAccessChanged
from pipedesk_common.messaging import Topology
from pipedesk_common.outbox import (
    PENDING,
    SENT,
    OutboxRelay,
    RelaySettings,
    add_event,
    notify_channel,
)
from pipedesk_common.reconnect import Backoff
from pipedesk_testkit.waiting import eventually

pytestmark = pytest.mark.asyncio

FAST = RelaySettings(
    poll_interval=0.1, backoff=Backoff(initial=0.1, cap=0.5), publish_timeout=5, heartbeat=2
)


@dataclass
class Relayed:
    """libs/common's test outbox, relayed to an exchange of this test's own, so no other test
    meets what it publishes; ``channel`` is a broker channel for the test's own queues."""

    engine: AsyncEngine
    table: Table
    topology: Topology
    channel: AbstractChannel
    service: str

    def relay(self, amqp_url: str, settings: RelaySettings = FAST) -> OutboxRelay:
        return OutboxRelay(
            service=self.service,
            engine=self.engine,
            table=self.table,
            topology=self.topology,
            amqp_url=amqp_url,
            clock=SystemClock(),
            settings=settings,
        )

    async def status_after_first_attempt(self, event_id: UUID) -> int | None:
        """The row's status once the relay has tried to publish it: marked sent, or a publish
        failed (without publisher confirms, a refused publish would be taken for sent)."""
        return await eventually(
            lambda: self.status_of(event_id),
            until=lambda status: status == SENT or self.failures() >= 1,
        )

    async def accept(self, refusing: AbstractQueue, event_id: UUID) -> None:
        """Remove the refusing queue; the relay's next attempt is then confirmed."""
        await refusing.delete(if_unused=False, if_empty=False)
        await eventually(lambda: self.status_of(event_id), until=lambda status: status == SENT)

    def reconnects(self, link: str) -> float:
        """How often the relay's ``link`` ("outbox relay", "outbox listener") was re-established."""
        labels = {"link": f"{self.service} {link}"}
        return REGISTRY.get_sample_value("pipedesk_reconnects_total", labels) or 0.0

    def gauge(self, name: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"service": self.service})

    async def add(self, event: Event[Any]) -> None:
        async with create_sessionmaker(self.engine)() as session:
            await add_event(session, self.table, event)
            await session.commit()

    async def status_of(self, event_id: UUID) -> int | None:
        async with self.engine.connect() as connection:
            return await connection.scalar(
                select(self.table.c.status).where(self.table.c.event_id == event_id)
            )

    def failures(self) -> float:
        """Publishes of this test's relay the broker did not confirm."""
        value = REGISTRY.get_sample_value(
            "pipedesk_outbox_publish_failures_total", {"service": self.service}
        )
        return value or 0.0

    async def queue(self, routing_key: str, **arguments: Any) -> AbstractQueue:
        """An exclusive queue bound to the test's exchange (gone when the test's channel is)."""
        exchange = await self.topology.declare_exchange(self.channel)
        queue = await self.channel.declare_queue(exclusive=True, arguments=arguments)
        await queue.bind(exchange, routing_key=routing_key)
        return queue

    async def refusing_queue(self, routing_key: str) -> AbstractQueue:
        """A queue that is always full and refuses what is routed to it: the broker answers
        such a publish with a negative confirm."""
        return await self.queue(routing_key, **{"x-max-length": 0, "x-overflow": "reject-publish"})


@pytest_asyncio.fixture
async def relayed(
    database_url: str, service_env: dict[str, str], outbox: Table
) -> AsyncIterator[Relayed]:
    name = f"outbox-test-{uuid4().hex[:10]}"
    engine = create_async_engine(database_url)
    topology = Topology(f"{service_env['BROKER_PREFIX']}{name}.")
    connection = await aio_pika.connect(service_env["AMQP_URL"])
    try:
        channel = await connection.channel()
        yield Relayed(engine, outbox, topology, channel, service=name)
        await topology.delete_exchanges(channel)
    finally:
        await connection.close()
        await engine.dispose()


def access_changed(model: type[LeadAccessChanged] | type[DealAccessChanged]) -> Event[Any]:
    org = f"org-{uuid4().hex[:8]}"
    data = model(id=str(uuid4()), version=1, org_id=org, owner_id="u1", team_id=None)
    return new_event(data, org_id=org, actor_id="u1", time=SystemClock().now())


@asynccontextmanager
async def relay_running(relay: OutboxRelay) -> AsyncIterator[None]:
    running = asyncio.create_task(relay.run())
    try:
        yield
    finally:
        relay.stop()
        await running


async def received_ids(queue: AbstractQueue) -> list[UUID]:
    """The events in the queue, each published as a persistent CloudEvents message."""
    found = []
    while (message := await queue.get(fail=False, no_ack=True)) is not None:
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.content_type == "application/cloudevents+json"
        found.append(decode_event(message.body).id)
    return found


async def test_a_publish_the_broker_refuses_stays_pending_and_is_sent_once_accepted(
    relayed: Relayed, service_env: dict[str, str]
) -> None:
    refused, accepted = access_changed(LeadAccessChanged), access_changed(DealAccessChanged)
    refusing = await relayed.refusing_queue(refused.routing_key)
    collected = await relayed.queue("#")
    await relayed.add(refused)
    await relayed.add(accepted)
    relay = relayed.relay(service_env["AMQP_URL"])
    async with relay_running(relay):
        # Both rows were published in one batch; the broker confirmed one and refused the other.
        assert await relayed.status_after_first_attempt(refused.id) == PENDING
        assert await relayed.status_of(accepted.id) == SENT
        # the relay takes the refusal for a lost link, and comes back for the rest
        await eventually(
            lambda: asyncio.sleep(0, relayed.reconnects("outbox relay")), until=lambda n: n >= 1
        )
        await relayed.accept(refusing, refused.id)
    assert set(await received_ids(collected)) >= {refused.id, accepted.id}


async def test_without_a_confirm_a_row_is_not_marked_sent(
    relayed: Relayed, service_env: dict[str, str]
) -> None:
    """Publishes wait for the broker's confirm: one written to the socket but refused by the
    broker is not taken for sent, as it would be without publisher confirms."""
    refused = access_changed(LeadAccessChanged)
    refusing = await relayed.refusing_queue(refused.routing_key)
    await relayed.add(refused)
    relay = relayed.relay(service_env["AMQP_URL"])
    async with relay_running(relay):
        assert await relayed.status_after_first_attempt(refused.id) == PENDING
        # the backlog shows the refused event, and how long it has waited
        await eventually(
            lambda: asyncio.sleep(0, relayed.gauge("pipedesk_outbox_backlog")),
            until=lambda backlog: backlog == 1,
        )
        assert 0 < (relayed.gauge("pipedesk_outbox_oldest_age_seconds") or 0) < 60
        await relayed.accept(refusing, refused.id)
        await eventually(
            lambda: asyncio.sleep(0, relayed.gauge("pipedesk_outbox_backlog")),
            until=lambda backlog: backlog == 0,
        )
        assert relayed.gauge("pipedesk_outbox_oldest_age_seconds") == 0


async def test_a_relay_whose_listening_connection_is_lost_listens_again(
    relayed: Relayed, service_env: dict[str, str], database_url: str
) -> None:
    """With polls an hour apart, only a notification wakes the relay: after its LISTEN
    connection is killed, it reconnects through its clock and the next commit goes out."""
    settings = replace(FAST, poll_interval=3600)
    first, second = access_changed(LeadAccessChanged), access_changed(LeadAccessChanged)
    async with relay_running(relayed.relay(service_env["AMQP_URL"], settings)):
        await relayed.add(first)
        await eventually(lambda: relayed.status_of(first.id), until=lambda status: status == SENT)
        before = relayed.reconnects("outbox listener")
        killed = await connect_raw(database_url)
        try:
            # This relay's own: another relay of the database (a service another test started)
            # listens on its own channel and is left alone.
            terminated = await killed.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN %' "
                "AND position($1 in query) > 0",
                notify_channel(relayed.table),
            )
        finally:
            await killed.close()
        assert terminated == 1
        await eventually(
            lambda: asyncio.sleep(0, relayed.reconnects("outbox listener")),
            until=lambda count: count > before,
        )
        await relayed.add(second)
        await eventually(lambda: relayed.status_of(second.id), until=lambda status: status == SENT)


async def test_sent_rows_are_pruned_on_the_relays_schedule(
    relayed: Relayed, service_env: dict[str, str]
) -> None:
    """The running relay prunes on its first turn and then once per ``prune_every``."""
    settings = replace(FAST, retention=timedelta(0), prune_every=3600)
    first, second = access_changed(LeadAccessChanged), access_changed(LeadAccessChanged)
    collected = await relayed.queue("#")
    await relayed.add(first)
    async with relay_running(relayed.relay(service_env["AMQP_URL"], settings)):
        await eventually(lambda: relayed.status_of(first.id), until=lambda status: status is None)
        await relayed.add(second)
        await eventually(lambda: relayed.status_of(second.id), until=lambda status: status == SENT)
    assert await relayed.status_of(second.id) == SENT  # the next pruning is an hour away
    assert await received_ids(collected) == [first.id, second.id]


async def test_an_event_carries_the_trace_it_was_written_in_unless_it_names_its_own(
    relayed: Relayed,
) -> None:
    span = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    own_trace = "00-11111111111111111111111111111111-2222222222222222-01"
    traced = access_changed(LeadAccessChanged)
    named = replace(access_changed(LeadAccessChanged), traceparent=own_trace)
    with trace.use_span(NonRecordingSpan(span)):
        async with create_sessionmaker(relayed.engine)() as session:
            await add_event(session, relayed.table, traced)
            await add_event(session, relayed.table, named)
            await session.commit()
    async with relayed.engine.connect() as connection:
        bodies = dict(
            (
                await connection.execute(
                    select(relayed.table.c.event_id, relayed.table.c.body).where(
                        relayed.table.c.event_id.in_([traced.id, named.id])
                    )
                )
            ).all()
        )
    assert decode_event(bodies[traced.id]).traceparent == (
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    )
    assert decode_event(bodies[named.id]).traceparent == own_trace
