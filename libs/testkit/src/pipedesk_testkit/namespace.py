"""Broker namespaces of a test's own, inside the run's: exchanges and queues under a longer
prefix, deleted when the namespace closes. Services started in one meet none of the events
earlier tests left queued in the run's queues, and take none of later tests' events."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import aio_pika

from pipedesk_common.messaging import Topology, connect
from pipedesk_common.settings import DEFAULT_AMQP_URL


def sub_prefix(run_prefix: str) -> str:
    return f"{run_prefix}t{uuid.uuid4().hex[:8]}."


async def delete_namespace(prefix: str, queue_ledger: Path) -> None:
    """Remove the prefix's queues (those the ledger lists) and its exchanges."""
    connection = await connect(os.environ.get("AMQP_URL", DEFAULT_AMQP_URL), name="test-teardown")
    try:
        topology = Topology(prefix, queue_ledger=queue_ledger)
        channel = await connection.channel()
        await topology.delete_ledger_queues(channel)
        await topology.delete_exchanges(channel)
    finally:
        await connection.close()


@asynccontextmanager
async def broker_namespace(run_prefix: str, queue_ledger: Path) -> AsyncIterator[str]:
    prefix = sub_prefix(run_prefix)
    try:
        yield prefix
    finally:
        await delete_namespace(prefix, queue_ledger)


@contextmanager
def own_namespace(service_env: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """``service_env`` with a namespace of its own (for code outside an event loop)."""
    prefix = sub_prefix(service_env["BROKER_PREFIX"])
    try:
        yield {**service_env, "BROKER_PREFIX": prefix}
    finally:
        asyncio.run(delete_namespace(prefix, Path(service_env["BROKER_QUEUE_LEDGER"])))


def _ledger(queue_ledger: Path) -> list[str]:
    return queue_ledger.read_text(encoding="utf-8").split() if queue_ledger.exists() else []


async def purge_queues(prefix: str, queue_ledger: Path) -> None:
    """Empty every queue under ``prefix`` the ledger lists (those of closed namespaces are gone)."""
    names = sorted({name for name in _ledger(queue_ledger) if name.startswith(prefix)})
    connection = await connect(os.environ.get("AMQP_URL", DEFAULT_AMQP_URL), name="test-purge")
    try:
        channel = await connection.channel()
        for name in names:
            try:
                queue = await channel.get_queue(name, ensure=True)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                channel = await connection.channel()
                continue
            await queue.purge()
    finally:
        await connection.close()
