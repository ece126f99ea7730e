"""The relay's bookkeeping: rows are marked sent only once confirmed, and pruned after retention."""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import aio_pika
import pytest
from aio_pika.abc import AbstractExchange
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from crm_service.models import outbox
from pipedesk_common.clock import ManualClock
from pipedesk_common.db import create_sessionmaker
from pipedesk_common.events import Event, new_event
from pipedesk_common.events.crm import LeadAccessChanged
from pipedesk_common.messaging import Topology
from pipedesk_common.outbox import PENDING, SENT, OutboxRelay, RelaySettings, add_event
from pipedesk_testkit.waiting import eventually

pytestmark = pytest.mark.asyncio


async def test_sent_rows_are_pruned_after_the_retention_period_and_pending_rows_never(
    database_url: str, service_env: dict[str, str]
) -> None:
    clock = ManualClock()
    engine = create_async_engine(database_url)
    topology = Topology(service_env["BROKER_PREFIX"])
    relay = OutboxRelay(
        service="crm",
        engine=engine,
        table=outbox,
        topology=topology,
        amqp_url=service_env["AMQP_URL"],
        clock=clock,
        settings=RelaySettings(retention=timedelta(days=3)),
    )

    def event() -> Event[LeadAccessChanged]:
        org = f"org-{uuid4().hex[:8]}"
        data = LeadAccessChanged(id=str(uuid4()), version=1, org_id=org, owner_id="u", team_id=None)
        return new_event(data, org_id=org, actor_id="u", time=clock.now())

    connection = await aio_pika.connect(service_env["AMQP_URL"])
    try:
        async with create_sessionmaker(engine)() as session:
            sent_event = event()
            await add_event(session, outbox, sent_event)
            await session.commit()
        exchange = await topology.declare_exchange(
            await connection.channel(publisher_confirms=True)
        )
        while await relay.relay_once(exchange):
            pass
        async with create_sessionmaker(engine)() as session:
            pending_event = event()
            await add_event(session, outbox, pending_event)
            await session.commit()

        async def status_of(event_id: UUID) -> int | None:
            async with engine.connect() as db:
                return await db.scalar(select(outbox.c.status).where(outbox.c.event_id == event_id))

        assert await status_of(sent_event.id) == SENT
        clock.advance(timedelta(days=2))
        await relay.prune()
        assert await status_of(sent_event.id) == SENT
        clock.advance(timedelta(days=2))
        assert await relay.prune() >= 1
        assert await status_of(sent_event.id) is None
        assert await status_of(pending_event.id) == PENDING
    finally:
        await connection.close()
        await engine.dispose()


class NotifiedDuringBatch(OutboxRelay):
    """Commits new events while its first batch is being published, and returns only once their
    notification has reached the relay: the moment a wake-up used to be lost."""

    def __init__(self, *args: Any, commit: Callable[[], Awaitable[UUID]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commit = commit
        self.committed: list[UUID] = []

    async def relay_once(self, exchange: AbstractExchange) -> int:
        sent = await super().relay_once(exchange)
        if not self.committed:
            while not self._wake.is_set():  # until the LISTEN connection is up and has heard one
                self.committed.append(await self.commit())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await self._wake.wait()
        return sent


async def test_a_commit_notified_while_a_batch_is_published_is_relayed_without_waiting_for_a_poll(
    database_url: str, service_env: dict[str, str]
) -> None:
    engine = create_async_engine(database_url)
    clock = ManualClock()

    async def commit() -> UUID:
        org = f"org-{uuid4().hex[:8]}"
        data = LeadAccessChanged(id=str(uuid4()), version=1, org_id=org, owner_id="u", team_id=None)
        event = new_event(data, org_id=org, actor_id="u", time=clock.now())
        async with create_sessionmaker(engine)() as session:
            await add_event(session, outbox, event)
            await session.commit()
        return event.id

    relay = NotifiedDuringBatch(
        service="crm",
        engine=engine,
        table=outbox,
        topology=Topology(service_env["BROKER_PREFIX"]),
        amqp_url=service_env["AMQP_URL"],
        clock=clock,
        settings=RelaySettings(poll_interval=600),  # only a notification can wake it in time
        commit=commit,
    )
    running = asyncio.create_task(relay.run())
    try:
        first = await eventually(lambda: asyncio.sleep(0, relay.committed), until=bool)

        async def statuses() -> set[int]:
            async with engine.connect() as db:
                rows = await db.execute(select(outbox.c.status).where(outbox.c.event_id.in_(first)))
                return {status for (status,) in rows}

        assert await eventually(statuses, until=lambda found: found == {SENT})
    finally:
        relay.stop()
        await running
        await engine.dispose()
