"""The relay against a broker that refuses some publishes: a row is marked sent only once the
broker has confirmed it, so a refused or unconfirmed event stays pending and goes out later."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID, uuid4

import aio_pika
import pytest
import pytest_asyncio
from aio_pika.abc import AbstractChannel, AbstractQueue
from aio_pika.exceptions import DeliveryError
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from pamqp import frame
from pamqp.commands import Connection as spec_connection
from prometheus_client import REGISTRY
from sqlalchemy import MetaData, Table, select, text
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.schema import CreateSchema, DropSchema

from pipedesk_common.clock import Clock, ManualClock, SystemClock
from pipedesk_common.db import connect_raw, create_sessionmaker
from pipedesk_common.events import Event, decode_event, encode_event, new_event
from pipedesk_common.events.crm import DealAccessChanged, LeadAccessChanged
from pipedesk_common.messaging import Topology, connect
from pipedesk_common.observability import configure_tracing, request_id_var
from pipedesk_common.outbox import (
    PENDING,
    SENT,
    OutboxRelay,
    RelaySettings,
    add_event,
    add_events,
    add_events_to,
    notify_channel,
    outbox_table,
    traceparent_of,
)
from pipedesk_common.reconnect import Backoff
from pipedesk_testkit.proxy import server_of, tcp_proxy, through
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

    def relay(
        self, amqp_url: str, settings: RelaySettings = FAST, clock: Clock | None = None
    ) -> OutboxRelay:
        return OutboxRelay(
            service=self.service,
            engine=self.engine,
            table=self.table,
            topology=self.topology,
            amqp_url=amqp_url,
            clock=clock or SystemClock(),
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


async def test_a_relay_stopped_while_its_listener_is_still_connecting_returns_and_leaves_no_task(
    relayed: Relayed, service_env: dict[str, str], database_url: str
) -> None:
    """A stop ends ``run`` wherever its listener is: one still connecting to a database that
    does not answer is cancelled and waited for, and ``run`` returns as after any stop."""
    amqp_url = service_env["AMQP_URL"]
    with (
        tcp_proxy(*server_of(amqp_url)) as broker,
        tcp_proxy(*server_of(database_url)) as database,
    ):
        broker.cut()  # the relay's own loop waits to reconnect
        database.stall()  # a connection is accepted and never answered
        # The relay's own loop gives its database up within a second (its backlog metrics);
        # the listener connects for 5 s, so the stop finds it connecting.
        engine = create_async_engine(through(database, database_url), connect_args={"timeout": 0.5})
        relay = OutboxRelay(
            service=relayed.service,
            engine=engine,
            table=relayed.table,
            topology=relayed.topology,
            amqp_url=through(broker, amqp_url),
            clock=SystemClock(),
            settings=FAST,
        )
        running = asyncio.create_task(relay.run())
        try:
            await eventually(lambda: asyncio.sleep(0, database.connections_made), until=bool)
        finally:
            relay.stop()
            await asyncio.wait([running])
            listening = [
                task
                for task in asyncio.all_tasks()
                if task.get_name() == f"{relayed.service}-outbox-listen"
            ]
            database.restore()
            await engine.dispose()
    assert not running.cancelled()
    assert running.exception() is None
    assert listening == []


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


async def test_events_added_on_a_connection_carry_the_request_they_were_written_in_unless_named(
    relayed: Relayed,
) -> None:
    """``add_events`` (a flush listener's, on the transaction's connection) stamps the request
    an event was written in, as ``add_event`` does, and keeps a request id the event names."""
    plain = access_changed(LeadAccessChanged)
    named = replace(access_changed(DealAccessChanged), request_id="req-of-its-own")
    request = request_id_var.set("req-written-in")
    try:
        async with relayed.engine.begin() as connection:
            await connection.run_sync(lambda sync: add_events(sync, relayed.table, [plain, named]))
    finally:
        request_id_var.reset(request)
    async with relayed.engine.connect() as connection:
        bodies = dict(
            (
                await connection.execute(
                    select(relayed.table.c.event_id, relayed.table.c.body).where(
                        relayed.table.c.event_id.in_([plain.id, named.id])
                    )
                )
            ).all()
        )
    assert decode_event(bodies[plain.id]).request_id == "req-written-in"
    assert decode_event(bodies[named.id]).request_id == "req-of-its-own"


async def test_a_backlog_beyond_a_batch_goes_out_batch_after_batch_without_waiting(
    relayed: Relayed, service_env: dict[str, str]
) -> None:
    """A full batch means more may be waiting: the relay claims the next one at once, without
    waiting for a notification or a poll (here an hour apart)."""
    settings = replace(FAST, batch_size=1, poll_interval=3600)
    events = [access_changed(LeadAccessChanged) for _ in range(3)]
    async with create_sessionmaker(relayed.engine)() as session:
        await add_events_to(session, relayed.table, events)
        await session.commit()
    async with relay_running(relayed.relay(service_env["AMQP_URL"], settings)):
        await eventually(
            lambda: asyncio.gather(*(relayed.status_of(event.id) for event in events)),
            until=lambda statuses: statuses == [SENT] * len(events),
        )


async def test_a_row_no_notification_announced_is_found_by_the_next_poll(
    relayed: Relayed, service_env: dict[str, str]
) -> None:
    """Polls are the relay's fallback for a notification it missed: each poll that finds
    nothing is an ordinary wait, not a lost link."""
    settings = replace(FAST, poll_interval=0.2)
    first, unannounced = access_changed(LeadAccessChanged), access_changed(LeadAccessChanged)
    before = relayed.reconnects("outbox relay")
    async with relay_running(relayed.relay(service_env["AMQP_URL"], settings)):
        await relayed.add(first)
        await eventually(lambda: relayed.status_of(first.id), until=lambda s: s == SENT)
        async with relayed.engine.begin() as connection:  # no pg_notify: only a poll finds it
            await connection.execute(
                relayed.table.insert().values(
                    event_id=unannounced.id,
                    routing_key=unannounced.routing_key,
                    body=encode_event(unannounced),
                )
            )
        await eventually(lambda: relayed.status_of(unannounced.id), until=lambda s: s == SENT)
    assert relayed.reconnects("outbox relay") == before


async def test_a_relayed_message_carries_its_events_trace_and_an_untraced_one_none(
    relayed: Relayed, service_env: dict[str, str]
) -> None:
    """The relay's publish continues the trace the change was written in: the message's
    ``traceparent`` header names the event's trace, so the consumer's span joins it."""
    trace_id = "11111111111111111111111111111111"
    traced = replace(
        access_changed(LeadAccessChanged), traceparent=f"00-{trace_id}-2222222222222222-01"
    )
    untraced = access_changed(DealAccessChanged)
    collected = await relayed.queue("#")
    await relayed.add(traced)
    await relayed.add(untraced)
    async with relay_running(relayed.relay(service_env["AMQP_URL"])):
        await eventually(
            lambda: asyncio.gather(relayed.status_of(traced.id), relayed.status_of(untraced.id)),
            until=lambda statuses: tuple(statuses) == (SENT, SENT),
        )
    headers = {}
    while (message := await collected.get(fail=False, no_ack=True)) is not None:
        headers[decode_event(message.body).id] = message.headers
    assert set(headers) == {traced.id, untraced.id}
    assert headers[untraced.id] == {}
    version, sent_trace, _span, _flags = str(headers[traced.id]["traceparent"]).split("-")
    assert (version, sent_trace) == ("00", trace_id)


@pytest_asyncio.fixture
async def alone(relayed: Relayed) -> AsyncIterator[Relayed]:
    """``relayed`` with an outbox of its own, in a schema of its own: the rows a test claims
    straight through ``relay_once`` are its own and no other test's."""
    schema = f"outbox_test_{uuid4().hex[:10]}"
    table = outbox_table(MetaData(schema=schema))
    async with relayed.engine.begin() as connection:
        await connection.execute(CreateSchema(schema))
        await connection.run_sync(table.metadata.create_all)
    try:
        yield replace(relayed, table=table)
    finally:
        async with relayed.engine.begin() as connection:
            await connection.execute(DropSchema(schema, cascade=True))


async def insert_in_reverse(relayed: Relayed, events: list[Event[Any]]) -> None:
    """The events as rows 1, 2, … written last to first: a scan in the order they were written
    meets the highest id first."""
    async with relayed.engine.begin() as connection:
        for number, event in reversed(list(enumerate(events, start=1))):
            await connection.execute(
                relayed.table.insert().values(
                    id=number,
                    event_id=event.id,
                    routing_key=event.routing_key,
                    body=encode_event(event),
                )
            )


async def statuses(relayed: Relayed, events: list[Event[Any]]) -> list[int | None]:
    return [await relayed.status_of(event.id) for event in events]


async def test_a_backlog_is_claimed_in_id_order_a_batch_at_a_time(
    alone: Relayed, service_env: dict[str, str], database_url: str
) -> None:
    """Whatever plan the database picks: here one that reads the table as it is stored, last
    row first, so only the claim's own order puts the rows in id order."""
    events = [access_changed(LeadAccessChanged) for _ in range(5)]
    await insert_in_reverse(alone, events)
    collected = await alone.queue("#")
    scans = {"enable_indexscan": "off", "enable_bitmapscan": "off", "enable_indexonlyscan": "off"}
    engine = create_async_engine(database_url, connect_args={"server_settings": scans})
    relay = replace(alone, engine=engine).relay(
        service_env["AMQP_URL"], replace(FAST, batch_size=2)
    )
    exchange = await alone.topology.declare_exchange(alone.channel)
    try:
        assert await relay.relay_once(exchange) == 2
        assert await statuses(alone, events) == [SENT, SENT, PENDING, PENDING, PENDING]
        assert await relay.relay_once(exchange) == 2
        assert await statuses(alone, events) == [SENT, SENT, SENT, SENT, PENDING]
        assert await relay.relay_once(exchange) == 1
        assert await relay.relay_once(exchange) == 0
    finally:
        await engine.dispose()
    assert sorted(map(str, await received_ids(collected))) == sorted(str(e.id) for e in events)


async def test_events_and_their_notification_are_written_in_one_statement(
    relayed: Relayed, database_url: str
) -> None:
    """A change's events cost it one round trip: their rows and the notification that announces
    them at commit are one statement."""
    events = [access_changed(LeadAccessChanged), access_changed(DealAccessChanged)]
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    async with relayed.engine.connect() as connection:  # its first connection's setup is not ours
        await connection.execute(text("SELECT 1"))
    listener = await connect_raw(database_url)
    notified = asyncio.Event()
    await listener.add_listener(notify_channel(relayed.table), lambda *_: notified.set())
    sqlalchemy_event.listen(relayed.engine.sync_engine, "before_cursor_execute", record)
    try:
        async with create_sessionmaker(relayed.engine)() as session:
            await add_events_to(session, relayed.table, events)
            assert len(statements) == 1
            await session.commit()
        await eventually(lambda: asyncio.sleep(0, notified.is_set()), until=bool)
    finally:
        sqlalchemy_event.remove(relayed.engine.sync_engine, "before_cursor_execute", record)
        await listener.close()
    assert [await relayed.status_of(written.id) for written in events] == [PENDING, PENDING]


async def test_a_batch_marked_sent_leaves_the_backlog_gauges_at_what_is_still_pending(
    alone: Relayed, service_env: dict[str, str]
) -> None:
    """The statement that marks a batch sent counts what it leaves pending: the gauges are
    current after every batch, without a count of their own."""
    events = [access_changed(LeadAccessChanged) for _ in range(5)]
    await insert_in_reverse(alone, events)
    relay = alone.relay(service_env["AMQP_URL"], replace(FAST, batch_size=2))
    exchange = await alone.topology.declare_exchange(alone.channel)
    assert alone.gauge("pipedesk_outbox_backlog") is None
    assert await relay.relay_once(exchange) == 2
    assert alone.gauge("pipedesk_outbox_backlog") == 3
    age = alone.gauge("pipedesk_outbox_oldest_age_seconds")
    assert age is not None
    assert 0 <= age < 60
    assert await relay.relay_once(exchange) == 2
    assert alone.gauge("pipedesk_outbox_backlog") == 1
    assert await relay.relay_once(exchange) == 1
    assert alone.gauge("pipedesk_outbox_backlog") == 0
    assert alone.gauge("pipedesk_outbox_oldest_age_seconds") == 0


async def lock_waits(relayed: Relayed) -> int:
    """Sessions of this run's database waiting for a row lock."""
    async with relayed.engine.connect() as connection:
        return int(
            await connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
            or 0
        )


async def test_a_row_another_relay_has_claimed_is_skipped_not_waited_for_nor_sent_twice(
    alone: Relayed, service_env: dict[str, str]
) -> None:
    events = [access_changed(LeadAccessChanged) for _ in range(3)]
    await insert_in_reverse(alone, events)
    collected = await alone.queue("#")
    relay = alone.relay(service_env["AMQP_URL"])
    exchange = await alone.topology.declare_exchange(alone.channel)
    async with alone.engine.connect() as other:
        # another relay's claim on the first row, its publish not yet confirmed
        await other.execute(
            alone.table.select().where(alone.table.c.id == 1).with_for_update(skip_locked=True)
        )
        claiming = asyncio.create_task(relay.relay_once(exchange))
        outcome = await eventually(
            lambda: asyncio.sleep(0, claiming.done()) if claiming.done() else lock_waits(alone),
            until=lambda seen: seen is True or seen > 0,
        )
        assert outcome is True, "the relay waited for the other relay's claimed row"
        assert claiming.result() == 2
        assert await statuses(alone, events) == [PENDING, SENT, SENT]
        await other.rollback()  # the other relay gave its claim up
    assert await relay.relay_once(exchange) == 1
    assert await relay.relay_once(exchange) == 0
    assert sorted(map(str, await received_ids(collected))) == sorted(str(e.id) for e in events)


async def test_a_publish_the_broker_refuses_is_raised_once_the_others_are_marked_sent(
    alone: Relayed, service_env: dict[str, str]
) -> None:
    refused, accepted = access_changed(LeadAccessChanged), access_changed(DealAccessChanged)
    await alone.refusing_queue(refused.routing_key)
    await insert_in_reverse(alone, [refused, accepted])
    relay = alone.relay(service_env["AMQP_URL"])
    exchange = await alone.topology.declare_exchange(alone.channel)
    with pytest.raises(DeliveryError):
        await relay.relay_once(exchange)
    assert await statuses(alone, [refused, accepted]) == [PENDING, SENT]


async def test_an_event_no_queue_is_bound_to_is_sent_all_the_same(
    alone: Relayed, service_env: dict[str, str]
) -> None:
    """Nobody listening is no failure: the broker drops what no queue takes, and the row is
    sent."""
    event = access_changed(LeadAccessChanged)
    await insert_in_reverse(alone, [event])
    relay = alone.relay(service_env["AMQP_URL"])
    assert await relay.relay_once(await alone.topology.declare_exchange(alone.channel)) == 1
    assert await alone.status_of(event.id) == SENT


async def test_a_publish_the_broker_never_confirms_fails_after_the_publish_timeout(
    alone: Relayed, service_env: dict[str, str]
) -> None:
    event = access_changed(LeadAccessChanged)
    await insert_in_reverse(alone, [event])
    relay = alone.relay(service_env["AMQP_URL"], replace(FAST, publish_timeout=0.5))
    amqp_url = service_env["AMQP_URL"]
    with tcp_proxy(*server_of(amqp_url)) as proxy:
        connection = await connect(through(proxy, amqp_url), name="outbox-test", heartbeat=60)
        try:
            exchange = await alone.topology.declare_exchange(await connection.channel())
            proxy.hold_answers()  # the broker gets the message; its confirm never comes back
            # a deadline for the test itself: a publish waiting for ever fails it here
            async with asyncio.timeout(20):
                with pytest.raises(TimeoutError):
                    await relay.relay_once(exchange)
            assert await alone.status_of(event.id) == PENDING
        finally:
            proxy.restore()
            await connection.close()


async def test_the_relays_publish_is_a_producer_span_of_the_events_trace(
    alone: Relayed, service_env: dict[str, str]
) -> None:
    exporter = InMemorySpanExporter()
    configure_tracing("tests").add_span_processor(SimpleSpanProcessor(exporter))
    trace_id, parent_id = "33333333333333333333333333333333", "4444444444444444"
    traced = replace(access_changed(LeadAccessChanged), traceparent=f"00-{trace_id}-{parent_id}-01")
    await insert_in_reverse(alone, [traced])
    relay = alone.relay(service_env["AMQP_URL"])
    assert await relay.relay_once(await alone.topology.declare_exchange(alone.channel)) == 1
    spans = [
        span
        for span in exporter.get_finished_spans()
        if format(span.context.trace_id, "032x") == trace_id
    ]
    assert [span.name for span in spans] == [f"publish {traced.routing_key}"]
    (span,) = spans
    assert span.kind == trace.SpanKind.PRODUCER
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == parent_id
    assert dict(span.attributes or {}) == {
        "messaging.system": "rabbitmq",
        "messaging.destination": traced.routing_key,
    }


async def test_a_traceparent_that_is_not_text_is_none() -> None:
    assert traceparent_of(b'{"traceparent": 7}') is None
    assert traceparent_of(b'{"traceparent": ["00-1-2-01"]}') is None
    assert traceparent_of(b'{"traceparent": "00-1-2-01"}') == "00-1-2-01"


@asynccontextmanager
async def recording_proxy(target: str) -> AsyncIterator[tuple[str, list[bytearray]]]:
    """``target`` (an AMQP URL) through a loopback proxy that keeps what each client sent."""
    host, port = server_of(target)
    sent: list[bytearray] = []

    async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, kept: Any) -> None:
        try:
            while chunk := await source.read(65536):
                if kept is not None:
                    kept.extend(chunk)
                sink.write(chunk)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.transport.abort()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
        sent.append(bytearray())
        await asyncio.gather(
            pump(reader, upstream_writer, sent[-1]), pump(upstream_reader, writer, None)
        )

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        port_used = server.sockets[0].getsockname()[1]
        parts = urlsplit(target)
        credentials, at, _address = parts.netloc.rpartition("@")
        yield urlunsplit(parts._replace(netloc=f"{credentials}{at}127.0.0.1:{port_used}")), sent
    finally:
        server.close()


def handshake(sent: bytes) -> tuple[str, int]:
    """The name (Connection.StartOk) and the heartbeat (Connection.TuneOk) a client asked for
    in its AMQP handshake."""
    data, name = sent[len(b"AMQP\x00\x00\x09\x01") :], ""
    while data:
        consumed, _channel, value = frame.unmarshal(data)
        if isinstance(value, spec_connection.StartOk):
            name = str(value.client_properties["connection_name"])
        if isinstance(value, spec_connection.TuneOk):
            return name, int(value.heartbeat)
        data = data[consumed:]
    raise AssertionError("no Connection.TuneOk was sent")


async def test_the_relays_broker_connection_is_named_and_asks_for_its_heartbeat(
    relayed: Relayed, service_env: dict[str, str]
) -> None:
    """Its heartbeat is how soon the relay notices a hung broker link; its name tells an
    operator whose link it is."""
    event = access_changed(LeadAccessChanged)
    async with (
        recording_proxy(service_env["AMQP_URL"]) as (amqp_url, sent),
        relay_running(relayed.relay(amqp_url, replace(FAST, heartbeat=3))),
    ):
        await relayed.add(event)
        await eventually(lambda: relayed.status_of(event.id), until=lambda s: s == SENT)
    assert [handshake(bytes(each)) for each in sent] == [(f"{relayed.service}-relay", 3)]


async def test_prune_deletes_the_rows_sent_before_the_retention_period_and_counts_them(
    alone: Relayed, service_env: dict[str, str]
) -> None:
    clock = ManualClock()
    relay = alone.relay(
        service_env["AMQP_URL"], replace(FAST, retention=timedelta(days=1)), clock=clock
    )
    cutoff = clock.now() - timedelta(days=1)
    events = [access_changed(LeadAccessChanged) for _ in range(4)]
    await insert_in_reverse(alone, events)
    sent_at = [cutoff - timedelta(microseconds=1), cutoff, cutoff + timedelta(hours=1), None]
    async with alone.engine.begin() as connection:
        for event, when in zip(events, sent_at, strict=True):
            await connection.execute(
                alone.table.update()
                .where(alone.table.c.event_id == event.id)
                .values(status=PENDING if when is None else SENT, sent_at=when)
            )
    assert await relay.prune() == 1
    assert await statuses(alone, events) == [None, SENT, SENT, PENDING]
    assert await relay.prune() == 0
