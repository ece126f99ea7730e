"""The outbox relay and a consumer across broker and database outages, simulated by the TCP
proxy: they reconnect by themselves (waiting through their clock) and no event is lost or
applied twice. Everything is real: PostgreSQL, RabbitMQ, libs/common's test schema."""

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aio_pika
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from pipedesk_common.amqp_runner import UPKEEP_SECONDS, ConsumerSettings, QueueRunner
from pipedesk_common.app import stop_task
from pipedesk_common.consumer import Consumer
from pipedesk_common.db import create_sessionmaker
from pipedesk_common.dlq import list_dead_letters
from pipedesk_common.events import Event, new_event
from pipedesk_common.events.crm import LeadAccessChanged
from pipedesk_common.inbox import InboxTables
from pipedesk_common.messaging import Topology
from pipedesk_common.outbox import OutboxRelay, RelaySettings, add_event
from pipedesk_common.reconnect import Backoff
from pipedesk_testkit.clocks import ObservedClock
from pipedesk_testkit.proxy import TcpProxy, server_of, tcp_proxy, through
from pipedesk_testkit.waiting import eventually

pytestmark = pytest.mark.asyncio

BACKOFF = Backoff(initial=0.05, cap=0.5)
RUNNER = ConsumerSettings(retry_delays_ms=(100, 200), backoff=BACKOFF, heartbeat=2)


class Pipeline:
    """An outbox, its relay, and a consumer of what it relays, each on links of its own; the
    service's own writes to the outbox go straight to the database."""

    def __init__(
        self,
        database_url: str,
        amqp_url: str,
        outbox: Table,
        inbox: InboxTables,
        topology: Topology,
    ) -> None:
        self.database_url, self.amqp_url, self.outbox = database_url, amqp_url, outbox
        self.topology = topology
        self.clock = ObservedClock()
        self.applied: Counter[str] = Counter()
        self.engine = create_async_engine(database_url)
        self.consumer = Consumer(f"links.{uuid.uuid4().hex[:8]}", inbox)

        @self.consumer.on(LeadAccessChanged)
        async def record(_session: AsyncSession, event: Event[LeadAccessChanged]) -> None:
            self.applied[event.data.id] += 1

    @property
    def queue(self) -> str:
        return self.topology.queue(self.consumer.queue)

    def retried(self) -> float:
        labels = {"queue": self.consumer.queue}
        return REGISTRY.get_sample_value("pipedesk_events_retried_total", labels) or 0.0

    async def write(self, *ids: str) -> None:
        """Commit one event per id to the outbox, as a service's transaction does."""
        async with create_sessionmaker(self.engine)() as session:
            for record_id in ids:
                org = f"org-{uuid.uuid4().hex[:8]}"
                data = LeadAccessChanged(
                    id=record_id, version=1, org_id=org, owner_id="u1", team_id=None
                )
                event = new_event(data, org_id=org, actor_id="u1", time=self.clock.now())
                await add_event(session, self.outbox, event)
            await session.commit()

    async def all_applied(self, ids: list[str]) -> bool:
        await asyncio.sleep(0)
        return all(self.applied[record_id] >= 1 for record_id in ids)

    async def across_outage(self, proxy: TcpProxy, *, noticed: Callable[[], bool]) -> list[str]:
        """Events committed before and during an outage of ``proxy``'s link, which is restored
        once ``noticed()``; returns their ids once every one was applied."""
        before = [f"before-{index}" for index in range(3)]
        await self.write(*before)
        await eventually(lambda: self.all_applied(before))
        proxy.cut()
        during = [f"during-{index}" for index in range(5)]
        await self.write(*during)  # the service keeps writing
        await eventually(lambda: asyncio.sleep(0, noticed()))
        proxy.restore()
        await eventually(lambda: self.all_applied(before + during))
        return before + during

    @asynccontextmanager
    async def running(
        self,
        *,
        relay_amqp: str | None = None,
        relay_database: str | None = None,
        consumer_amqp: str | None = None,
        consumer_database: str | None = None,
        consumer_settings: ConsumerSettings = RUNNER,
        consumer: Consumer | None = None,
    ) -> AsyncIterator[QueueRunner]:
        """The relay and a runner of ``consumer`` (the pipeline's own by default); the relay
        starts once the runner's queue is declared, so events written before reach it."""
        relay_engine = create_async_engine(
            relay_database or self.database_url, connect_args={"timeout": 2}
        )
        consumer_engine = create_async_engine(
            consumer_database or self.database_url,
            pool_pre_ping=True,
            connect_args={"timeout": 2},
        )
        relay = OutboxRelay(
            service="links",
            engine=relay_engine,
            table=self.outbox,
            topology=self.topology,
            amqp_url=relay_amqp or self.amqp_url,
            clock=self.clock,
            settings=RelaySettings(
                poll_interval=0.2, backoff=BACKOFF, heartbeat=2, publish_timeout=2
            ),
        )
        runner = QueueRunner(
            consumer or self.consumer,
            sessionmaker=create_sessionmaker(consumer_engine),
            topology=self.topology,
            amqp_url=consumer_amqp or self.amqp_url,
            clock=self.clock,
            settings=consumer_settings,
        )
        self.runner = runner
        ready = asyncio.Event()
        tasks = [asyncio.create_task(runner.run(ready))]
        try:
            await asyncio.wait_for(ready.wait(), timeout=15)
            tasks.append(asyncio.create_task(relay.run()))
            yield runner
        finally:
            runner.stop()
            relay.stop()
            await asyncio.wait(tasks, timeout=10)
            for task in tasks:
                await stop_task(task)
            await relay_engine.dispose()
            await consumer_engine.dispose()


@pytest_asyncio.fixture
async def pipeline(
    database_url: str, service_env: dict[str, str], outbox: Table, inbox: InboxTables
) -> AsyncIterator[Pipeline]:
    """A pipeline on an exchange of its own, so what it relays reaches no other test's queues."""
    topology = Topology(
        f"{service_env['BROKER_PREFIX']}links-{uuid.uuid4().hex[:6]}.",
        3_600_000,
        Path(service_env["BROKER_QUEUE_LEDGER"]),
    )
    found = Pipeline(database_url, service_env["AMQP_URL"], outbox, inbox, topology)
    try:
        yield found
    finally:
        await found.engine.dispose()
        connection = await aio_pika.connect(found.amqp_url)
        try:
            await found.topology.delete_exchanges(await connection.channel())
        finally:
            await connection.close()


async def test_the_relay_and_a_consumer_cut_off_from_the_broker_reconnect_and_lose_no_event(
    pipeline: Pipeline,
) -> None:
    with tcp_proxy(*server_of(pipeline.amqp_url)) as proxy:
        broker = through(proxy, pipeline.amqp_url)
        async with pipeline.running(relay_amqp=broker, consumer_amqp=broker):
            links_before = proxy.connections_made
            ids = await pipeline.across_outage(
                proxy, noticed=lambda: len(pipeline.clock.slept) >= 2
            )
            # Both the relay and the consumer came back on new connections.
            assert proxy.connections_made >= links_before + 2
    assert dict(pipeline.applied) == dict.fromkeys(ids, 1)
    assert all(0 < wait <= BACKOFF.cap for wait in pipeline.clock.slept)


async def test_the_relay_on_a_hung_broker_link_gives_it_up_and_loses_no_event(
    pipeline: Pipeline,
) -> None:
    with tcp_proxy(*server_of(pipeline.amqp_url)) as proxy:
        async with pipeline.running(relay_amqp=through(proxy, pipeline.amqp_url)):
            before = [f"before-{index}" for index in range(3)]
            await pipeline.write(*before)
            await eventually(lambda: pipeline.all_applied(before))
            links_before = proxy.connections_made
            proxy.stall()  # the peer stops answering; no reset ever comes
            during = [f"during-{index}" for index in range(5)]
            await pipeline.write(*during)
            # The relay notices (its publish unconfirmed, its heartbeats unanswered), lets the
            # link go without waiting for the broker to agree, and waits to try again.
            await eventually(lambda: asyncio.sleep(0, len(pipeline.clock.slept) >= 1))
            proxy.cut()  # the hung connections are finally dropped; new ones come through
            proxy.restore()
            await eventually(lambda: pipeline.all_applied(before + during))
            assert proxy.connections_made > links_before
    assert dict(pipeline.applied) == dict.fromkeys(before + during, 1)


async def test_the_relay_cut_off_from_the_database_reconnects_and_loses_no_event(
    pipeline: Pipeline,
) -> None:
    with tcp_proxy(*server_of(pipeline.database_url)) as proxy:
        async with pipeline.running(relay_database=through(proxy, pipeline.database_url)):
            links_before = proxy.connections_made
            # What is written during the outage is committed by the service's other connections.
            ids = await pipeline.across_outage(
                proxy, noticed=lambda: len(pipeline.clock.slept) >= 2
            )
            assert proxy.connections_made > links_before
    assert dict(pipeline.applied) == dict.fromkeys(ids, 1)


async def test_events_reaching_a_consumer_cut_off_from_the_database_are_applied_once_it_is_back(
    pipeline: Pipeline,
) -> None:
    patient = ConsumerSettings(max_attempts=50, retry_delays_ms=(100, 200), backoff=BACKOFF)
    with tcp_proxy(*server_of(pipeline.database_url)) as proxy:
        async with pipeline.running(
            consumer_database=through(proxy, pipeline.database_url), consumer_settings=patient
        ):
            retried_before = pipeline.retried()
            ids = await pipeline.across_outage(
                proxy, noticed=lambda: pipeline.retried() > retried_before
            )
        assert await list_dead_letters(pipeline.amqp_url, pipeline.queue) == []
    assert dict(pipeline.applied) == dict.fromkeys(ids, 1)


async def test_a_backlog_is_handled_a_few_events_at_a_time_not_a_prefetch_at_a_time(
    pipeline: Pipeline, inbox: InboxTables
) -> None:
    """Prefetched events wait for a handling slot, not for a database connection, so a backlog
    never takes the pool that requests and readiness checks share."""
    consumer = Consumer(f"slots.{uuid.uuid4().hex[:8]}", inbox)
    active = 0
    peak = 0
    done: list[str] = []
    gate = asyncio.Event()

    @consumer.on(LeadAccessChanged)
    async def hold(session: AsyncSession, event: Event[LeadAccessChanged]) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            await gate.wait()
            for _ in range(3):  # real round trips, during which other handlers could run
                await session.execute(select(1))
        finally:
            active -= 1
        done.append(event.data.id)

    ids = [f"backlog-{index}" for index in range(12)]
    await pipeline.write(*ids)
    settings = ConsumerSettings(prefetch=100, concurrency=2, backoff=BACKOFF)
    async with pipeline.running(consumer=consumer, consumer_settings=settings) as runner:
        # Every event is in the consumer's hands (none waits in the queue) and two are held.
        await eventually(lambda: asyncio.sleep(0, active == 2))
        await eventually(lambda: _ready_in_queue(pipeline.amqp_url, runner.queue_name, 0))
        gate.set()
        await eventually(lambda: asyncio.sleep(0, sorted(done) == sorted(ids)))
    assert peak == 2


async def _ready_in_queue(amqp_url: str, queue: str, expected: int) -> bool:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count == expected
    finally:
        await connection.close()


async def test_a_consumer_whose_channel_closes_consumes_again_on_a_new_one(
    pipeline: Pipeline,
) -> None:
    """The broker closes a channel on a channel error and keeps the connection: the consumer
    must not sit on the dead channel while its queue fills up."""
    async with pipeline.running():
        before = ["before-0"]
        await pipeline.write(*before)
        await eventually(lambda: pipeline.all_applied(before))
        dead = pipeline.runner.channel
        assert dead is not None
        await dead.close()
        after = [f"after-{index}" for index in range(3)]
        await pipeline.write(*after)
        await eventually(lambda: pipeline.all_applied(before + after))
        assert pipeline.runner.channel is not dead
    assert dict(pipeline.applied) == dict.fromkeys(before + after, 1)


async def test_a_dead_letter_queue_gone_does_not_close_the_consuming_channel(
    pipeline: Pipeline,
) -> None:
    """On a short-lived stack the dead-letter queue, which nobody consumes, expires; the queue
    depth checks that ask for it must not cost the consumer its channel."""
    async with pipeline.running():
        consuming = pipeline.runner.channel
        connection = await aio_pika.connect(pipeline.amqp_url)
        try:
            channel = await connection.channel()
            await channel.queue_delete(Topology.dead_letter_queue(pipeline.queue))
        finally:
            await connection.close()
        await asyncio.sleep(UPKEEP_SECONDS * 2)  # two depth checks ask for it
        ids = ["after-0", "after-1"]
        await pipeline.write(*ids)
        await eventually(lambda: pipeline.all_applied(ids))
        assert pipeline.runner.channel is consuming


async def test_events_waiting_for_a_slot_when_the_channel_closes_are_all_handled_on_the_next(
    pipeline: Pipeline, inbox: InboxTables
) -> None:
    """Messages that waited for a handling slot on a channel that closed are delivered again on
    the next one, and each of those is handled and acknowledged: none is left in a consumer's
    hands, which would hold back the events after it."""
    consumer = Consumer(f"waiting.{uuid.uuid4().hex[:8]}", inbox)
    gate = asyncio.Event()
    held = asyncio.Event()
    applied: Counter[str] = Counter()

    @consumer.on(LeadAccessChanged)
    async def hold_the_first(_session: AsyncSession, event: Event[LeadAccessChanged]) -> None:
        if event.data.id == "waiting-0":
            held.set()
            await gate.wait()
        applied[event.data.id] += 1

    before = [f"waiting-{index}" for index in range(6)]
    after = [f"after-{index}" for index in range(3)]
    await pipeline.write(*before)
    settings = ConsumerSettings(prefetch=6, concurrency=1, backoff=BACKOFF)
    async with pipeline.running(consumer=consumer, consumer_settings=settings) as runner:
        await held.wait()
        await eventually(lambda: asyncio.sleep(0, runner.waiting == len(before) - 1))
        closing = runner.channel
        assert closing is not None
        await closing.close()
        gate.set()
        await pipeline.write(*after)

        async def every_one_handled() -> bool:
            await asyncio.sleep(0)
            return all(applied[record_id] >= 1 for record_id in before + after)

        await eventually(every_one_handled)
        await eventually(lambda: _ready_in_queue(pipeline.amqp_url, runner.queue_name, 0))
        await eventually(lambda: asyncio.sleep(0, runner.waiting == 0))
