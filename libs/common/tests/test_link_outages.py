"""The outbox relay and a consumer across broker and database outages, simulated by the TCP
proxy: they reconnect by themselves (waiting through their clock) and no event is lost or
applied twice. Everything is real: PostgreSQL, RabbitMQ, libs/common's test schema."""

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Table, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from pipedesk_common.amqp_runner import ConsumerSettings, QueueRunner
from pipedesk_common.app import stop_task
from pipedesk_common.clock import SystemClock
from pipedesk_common.consumer import Consumer
from pipedesk_common.db import create_sessionmaker
from pipedesk_common.dlq import list_dead_letters
from pipedesk_common.events import Event, new_event
from pipedesk_common.events.crm import LeadAccessChanged
from pipedesk_common.inbox import InboxTables
from pipedesk_common.messaging import Topology
from pipedesk_common.outbox import OutboxRelay, RelaySettings, add_event
from pipedesk_common.reconnect import Backoff
from pipedesk_testkit.proxy import TcpProxy, tcp_proxy
from pipedesk_testkit.waiting import eventually

pytestmark = pytest.mark.asyncio

BACKOFF = Backoff(initial=0.05, cap=0.5)


class ObservedClock(SystemClock):
    """Real time, noting the waits asked of it."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await super().sleep(seconds)


def proxied_amqp(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    address = f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{credentials}@{address}" if credentials else address))


def proxied_database(url: str, proxy: TcpProxy) -> str:
    return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(False)


def upstream(url: str, default_port: int) -> tuple[str, int]:
    parsed = make_url(url)
    return parsed.host or "127.0.0.1", parsed.port or default_port


@dataclass
class Pipeline:
    """An outbox, its relay, and a consumer of what it relays, each on its own links."""

    database_url: str
    amqp_url: str
    outbox: Table
    inbox: InboxTables
    topology: Topology
    clock: ObservedClock = field(default_factory=ObservedClock)
    applied: Counter[str] = field(default_factory=Counter)
    consumer: Consumer = field(init=False)

    def __post_init__(self) -> None:
        self.consumer = Consumer(f"links.{uuid.uuid4().hex[:8]}", self.inbox)

        @self.consumer.on(LeadAccessChanged)
        async def record(_session: AsyncSession, event: Event[LeadAccessChanged]) -> None:
            self.applied[event.data.id] += 1

    async def write(self, engine: AsyncEngine, *ids: str) -> None:
        """Commit one event per id to the outbox, as a service's transaction does."""
        async with create_sessionmaker(engine)() as session:
            for record_id in ids:
                org = f"org-{uuid.uuid4().hex[:8]}"
                data = LeadAccessChanged(
                    id=record_id, version=1, org_id=org, owner_id="u1", team_id=None
                )
                await add_event(
                    session,
                    self.outbox,
                    new_event(data, org_id=org, actor_id="u1", time=self.clock.now()),
                )
            await session.commit()

    async def all_applied(self, ids: list[str]) -> bool:
        await asyncio.sleep(0)
        return all(self.applied[record_id] >= 1 for record_id in ids)

    @property
    def queue(self) -> str:
        return self.topology.queue(self.consumer.queue)

    def retried(self) -> float:
        found = REGISTRY.get_sample_value(
            "pipedesk_events_retried_total", {"queue": self.consumer.queue}
        )
        return found or 0.0

    @asynccontextmanager
    async def running(
        self,
        *,
        relay_amqp: str,
        relay_database: str,
        consumer_amqp: str,
        consumer_database: str,
        consumer_settings: ConsumerSettings | None = None,
    ) -> AsyncIterator[None]:
        relay_engine = create_async_engine(relay_database, connect_args={"timeout": 2})
        consumer_engine = create_async_engine(
            consumer_database, pool_pre_ping=True, connect_args={"timeout": 2}
        )
        relay = OutboxRelay(
            service="links",
            engine=relay_engine,
            table=self.outbox,
            topology=self.topology,
            amqp_url=relay_amqp,
            clock=self.clock,
            settings=RelaySettings(poll_interval=0.2, backoff=BACKOFF, heartbeat=2),
        )
        runner = QueueRunner(
            self.consumer,
            sessionmaker=create_sessionmaker(consumer_engine),
            topology=self.topology,
            amqp_url=consumer_amqp,
            clock=self.clock,
            settings=consumer_settings
            or ConsumerSettings(retry_delays_ms=(100, 200), backoff=BACKOFF, heartbeat=2),
        )
        ready = asyncio.Event()
        consuming = asyncio.create_task(runner.run(ready))
        relaying = asyncio.create_task(relay.run())
        try:
            await asyncio.wait_for(ready.wait(), timeout=15)
            yield
        finally:
            runner.stop()
            relay.stop()
            await asyncio.wait({consuming, relaying}, timeout=10)
            await stop_task(consuming)
            await stop_task(relaying)
            await relay_engine.dispose()
            await consumer_engine.dispose()


@pytest.fixture
def topology(service_env: dict[str, str]) -> Topology:
    """An exchange of this test's own, so what it relays reaches no other test's queues."""
    return Topology(
        f"{service_env['BROKER_PREFIX']}links-{uuid.uuid4().hex[:6]}.",
        3_600_000,
        Path(service_env["BROKER_QUEUE_LEDGER"]),
    )


@asynccontextmanager
async def pipeline_of(
    database_url: str, amqp_url: str, outbox: Table, inbox: InboxTables, topology: Topology
) -> AsyncIterator[tuple[Pipeline, AsyncEngine]]:
    """A pipeline and a direct engine (the service's own writes, never cut)."""
    engine = create_async_engine(database_url)
    try:
        yield Pipeline(database_url, amqp_url, outbox, inbox, topology), engine
    finally:
        await engine.dispose()
        connection = await aio_pika.connect(amqp_url)
        try:
            await topology.delete_exchanges(await connection.channel())
        finally:
            await connection.close()


async def test_the_relay_and_a_consumer_cut_off_from_the_broker_reconnect_and_lose_no_event(
    database_url: str,
    service_env: dict[str, str],
    outbox: Table,
    inbox: InboxTables,
    topology: Topology,
) -> None:
    amqp_url = service_env["AMQP_URL"]
    async with pipeline_of(database_url, amqp_url, outbox, inbox, topology) as (pipeline, engine):
        with tcp_proxy(*upstream(amqp_url, 5672)) as proxy:
            broker = proxied_amqp(amqp_url, proxy)
            async with pipeline.running(
                relay_amqp=broker,
                relay_database=database_url,
                consumer_amqp=broker,
                consumer_database=database_url,
            ):
                before = [f"before-{index}" for index in range(3)]
                await pipeline.write(engine, *before)
                await eventually(lambda: pipeline.all_applied(before))
                links_before_cut = proxy.connections_made
                proxy.cut()
                during = [f"during-{index}" for index in range(5)]
                await pipeline.write(engine, *during)  # the service keeps writing
                await eventually(lambda: asyncio.sleep(0, len(pipeline.clock.slept) >= 2))
                proxy.restore()
                await eventually(lambda: pipeline.all_applied(before + during))
                # Both the relay and the consumer came back on new connections.
                assert proxy.connections_made >= links_before_cut + 2
    assert dict(pipeline.applied) == dict.fromkeys(before + during, 1)
    assert all(0 < wait <= BACKOFF.cap for wait in pipeline.clock.slept)


async def test_the_relay_cut_off_from_the_database_reconnects_and_loses_no_event(
    database_url: str,
    service_env: dict[str, str],
    outbox: Table,
    inbox: InboxTables,
    topology: Topology,
) -> None:
    amqp_url = service_env["AMQP_URL"]
    async with pipeline_of(database_url, amqp_url, outbox, inbox, topology) as (pipeline, engine):
        with tcp_proxy(*upstream(database_url, 5432)) as proxy:
            async with pipeline.running(
                relay_amqp=amqp_url,
                relay_database=proxied_database(database_url, proxy),
                consumer_amqp=amqp_url,
                consumer_database=database_url,
            ):
                before = [f"before-{index}" for index in range(3)]
                await pipeline.write(engine, *before)
                await eventually(lambda: pipeline.all_applied(before))
                links_before_cut = proxy.connections_made
                proxy.cut()
                # Committed by another process while this relay cannot reach the database.
                during = [f"during-{index}" for index in range(5)]
                await pipeline.write(engine, *during)
                await eventually(lambda: asyncio.sleep(0, len(pipeline.clock.slept) >= 2))
                proxy.restore()
                await eventually(lambda: pipeline.all_applied(before + during))
                assert proxy.connections_made > links_before_cut
    assert dict(pipeline.applied) == dict.fromkeys(before + during, 1)


async def test_events_reaching_a_consumer_cut_off_from_the_database_are_applied_once_it_is_back(
    database_url: str,
    service_env: dict[str, str],
    outbox: Table,
    inbox: InboxTables,
    topology: Topology,
) -> None:
    amqp_url = service_env["AMQP_URL"]
    patient = ConsumerSettings(max_attempts=50, retry_delays_ms=(100, 200), backoff=BACKOFF)
    async with pipeline_of(database_url, amqp_url, outbox, inbox, topology) as (pipeline, engine):
        with tcp_proxy(*upstream(database_url, 5432)) as proxy:
            async with pipeline.running(
                relay_amqp=amqp_url,
                relay_database=database_url,
                consumer_amqp=amqp_url,
                consumer_database=proxied_database(database_url, proxy),
                consumer_settings=patient,
            ):
                before = ["before"]
                await pipeline.write(engine, *before)
                await eventually(lambda: pipeline.all_applied(before))
                retried_before = pipeline.retried()
                proxy.cut()
                during = [f"during-{index}" for index in range(5)]
                await pipeline.write(engine, *during)
                await eventually(lambda: asyncio.sleep(0, pipeline.retried() > retried_before))
                proxy.restore()
                await eventually(lambda: pipeline.all_applied(before + during))
            assert await list_dead_letters(amqp_url, pipeline.queue) == []
    assert dict(pipeline.applied) == dict.fromkeys(before + during, 1)
