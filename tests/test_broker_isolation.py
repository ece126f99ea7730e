"""Two stacks on one broker never take each other's events: a stack's broker namespace is derived
from its database unless set, its queues carry its stack (its database's name), and a process
whose queue belongs to another stack stops, saying which and how to fix it. Replicas of one stack
share their queues as before. Real timeline processes, as a deployment runs them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aio_pika
import pytest
import pytest_asyncio
from sqlalchemy import make_url

from pipedesk_common.messaging import Topology, connect
from pipedesk_common.settings import DEFAULT_DATABASE_URL, derived_broker_prefix
from pipedesk_testkit.database import create_run_database, drop_database
from pipedesk_testkit.servers import free_port, run_process

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

QUEUE = "timeline.items"


@pytest.fixture
def namespace(service_env: dict[str, str]) -> Iterator[str]:
    """A broker namespace of this test's own (inside the run's), deleted afterwards."""
    prefix = f"{service_env['BROKER_PREFIX']}iso{uuid.uuid4().hex[:6]}."
    yield prefix
    asyncio.run(delete_namespace(service_env, prefix))


async def delete_namespace(service_env: dict[str, str], prefix: str) -> None:
    connection = await connect(service_env["AMQP_URL"], name="test-teardown")
    try:
        topology = Topology(prefix, queue_ledger=Path(service_env["BROKER_QUEUE_LEDGER"]))
        channel = await connection.channel()
        await topology.delete_ledger_queues(channel)
        await topology.delete_exchanges(channel)
    finally:
        await connection.close()


@pytest_asyncio.fixture
async def other_database() -> AsyncIterator[str]:
    """Another stack's database: migrated, and named otherwise than the run's."""
    url = await create_run_database(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    try:
        yield url
    finally:
        await drop_database(url)


def timeline_env(service_env: dict[str, str], port: int, **overrides: str) -> dict[str, str]:
    return {**service_env, "LOG_LEVEL": "WARNING", "TIMELINE_PORT": str(port), **overrides}


async def consumers_of(service_env: dict[str, str], queue: str) -> int:
    connection = await aio_pika.connect(service_env["AMQP_URL"])
    try:
        declared = await (await connection.channel()).declare_queue(queue, passive=True)
        return declared.declaration_result.consumer_count or 0
    finally:
        await connection.close()


async def test_a_second_stack_with_another_database_refuses_to_start_and_says_why(
    service_env: dict[str, str], namespace: str, other_database: str
) -> None:
    """Then, with its namespace derived from its database (BROKER_PREFIX unset), as the message
    advises, it starts beside the first."""
    first = free_port()
    ours = timeline_env(service_env, first, BROKER_PREFIX=namespace)
    derived = derived_broker_prefix(other_database)
    assert derived == f"{make_url(other_database).database}."
    try:
        with run_process(
            ["-m", "timeline_service"], env=ours, ready_url=f"http://127.0.0.1:{first}/healthz"
        ):
            theirs = timeline_env(
                service_env, free_port(), BROKER_PREFIX=namespace, DATABASE_URL=other_database
            )
            refused = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "timeline_service"],
                env={**os.environ, **theirs},
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert refused.returncode != 0
            run_database = make_url(service_env["DATABASE_URL"]).database
            output = refused.stdout + refused.stderr
            owner = f"queue {namespace}{QUEUE} belongs to the stack of database {run_database!r}"
            assert owner in output
            assert "leave BROKER_PREFIX unset" in output

            second = free_port()
            without_prefix = {k: v for k, v in theirs.items() if k != "BROKER_PREFIX"}
            with run_process(
                ["-m", "timeline_service"],
                env={**without_prefix, "TIMELINE_PORT": str(second)},
                ready_url=f"http://127.0.0.1:{second}/readyz",
            ):
                assert await consumers_of(service_env, namespace + QUEUE) == 1
                assert await consumers_of(service_env, derived + QUEUE) == 1
    finally:
        await delete_namespace(service_env, derived)


async def test_a_second_replica_of_the_same_stack_starts_and_shares_the_queue(
    service_env: dict[str, str], namespace: str
) -> None:
    first, second = free_port(), free_port()
    with (
        run_process(
            ["-m", "timeline_service"],
            env=timeline_env(service_env, first, BROKER_PREFIX=namespace),
            ready_url=f"http://127.0.0.1:{first}/readyz",
        ),
        run_process(
            ["-m", "timeline_service"],
            env=timeline_env(service_env, second, BROKER_PREFIX=namespace),
            ready_url=f"http://127.0.0.1:{second}/readyz",
        ),
    ):
        assert await consumers_of(service_env, namespace + QUEUE) == 2
