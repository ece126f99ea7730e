"""The broker topology on the real RabbitMQ: a short-lived stack leaves no queue behind."""

import os
import uuid
from pathlib import Path

import aio_pika
import pytest
from aiormq.exceptions import ChannelNotFoundEntity

from pipedesk_common.messaging import Topology, connect
from pipedesk_common.settings import DEFAULT_AMQP_URL

pytestmark = pytest.mark.asyncio


async def queue_exists(connection: aio_pika.abc.AbstractConnection, name: str) -> bool:
    channel = await connection.channel()
    try:
        await channel.declare_queue(name, passive=True)
    except ChannelNotFoundEntity:
        return False
    await channel.close()
    return True


async def test_the_ledger_lists_every_declared_queue_and_teardown_deletes_them(
    tmp_path: Path,
) -> None:
    prefix = f"ledger-{uuid.uuid4().hex[:8]}."
    ledger = tmp_path / "queues"
    topology = Topology(prefix, 60_000, ledger)
    other = Topology(f"other-{uuid.uuid4().hex[:8]}.", 60_000, ledger)  # not this stack's prefix
    connection = await connect(os.environ.get("AMQP_URL", DEFAULT_AMQP_URL), name="test-ledger")
    try:
        channel = await connection.channel()
        for name in ("first.items", "second.items"):
            await topology.declare_consumer_queue(
                channel,
                topology.queue(name),
                routing_keys=["crm.#"],
                delivery_limit=5,
                retry_delays_ms=[100, 200],
            )
        await other.declare_consumer_queue(
            channel,
            other.queue("kept"),
            routing_keys=["crm.#"],
            delivery_limit=5,
            retry_delays_ms=[],
        )
        declared = [
            f"{prefix}{name}{suffix}"
            for name in ("first.items", "second.items")
            for suffix in ("", ".dlq", ".retry.100", ".retry.200")
        ]
        assert set(declared) <= set(ledger.read_text().split())
        for name in declared:
            assert await queue_exists(connection, name)

        assert await topology.delete_ledger_queues(channel) == len(declared)
        await topology.delete_exchanges(channel)

        for name in declared:
            assert not await queue_exists(connection, name), name
        assert await queue_exists(connection, other.queue("kept"))  # another prefix is left alone
        assert await other.delete_ledger_queues(channel) == 2
        await other.delete_exchanges(channel)
    finally:
        await connection.close()
