"""On a machine with Docker and none of the servers, the suite runs on containers: PostgreSQL with
pg_trgm, RabbitMQ with quorum queues and Redis, started for the run and removed after it."""

import asyncio
import os
import socket
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import aio_pika
import pytest
from testcontainers.core.docker_client import DockerClient

from pipedesk_common.containers import LABEL, DockerContainers
from pipedesk_common.db import connect_raw
from pipedesk_common.preflight import TEST_SERVERS, provide

REPO = Path(__file__).resolve().parents[1]
# A lead through the CRM, the outbox, the broker and the timeline consumer to its timeline; and
# the timeline's page cache on Redis.
SLICE = [
    "tests/test_event_pipeline.py::test_a_lead_and_its_changes_appear_in_its_timeline",
    "services/timeline/tests/test_caching.py"
    "::test_the_redis_page_cache_uses_the_etag_as_key_and_is_never_stale",
]

pytestmark = pytest.mark.slow


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ours() -> set[str]:
    """The containers on this Docker that were started for a PipeDesk server."""
    docker = DockerClient().client
    try:
        return {container.id for container in docker.containers.list(filters={"label": LABEL})}
    finally:
        docker.close()


async def trigram_similarity_and_a_quorum_queue(database_url: str, amqp_url: str) -> float:
    database = await connect_raw(database_url, database="postgres")
    try:
        await database.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        similarity: float = await database.fetchval("SELECT similarity('pipedesk', 'pipedrive')")
    finally:
        await database.close()
    broker = await aio_pika.connect(amqp_url)
    try:
        channel = await broker.channel()
        queue = await channel.declare_queue(
            "containers-check", durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.delete(if_unused=False, if_empty=False)
    finally:
        await broker.close()
    return similarity


def test_a_lead_reaches_its_timeline_on_servers_started_in_containers() -> None:
    docker = DockerContainers()
    if (problem := docker.unavailable()) is not None:
        pytest.skip(
            "needs a Docker daemon to start PostgreSQL, RabbitMQ and Redis in containers, "
            f"and none answers here ({problem})"
        )
    nobody_answers = {
        "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/pipedesk",
        "AMQP_URL": f"amqp://guest:guest@127.0.0.1:{closed_port()}/",
        "REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0",
    }
    before = ours()

    # The containers are what the suite needs: pg_trgm, quorum queues.
    with ExitStack() as stack:
        provision = provide(TEST_SERVERS, nobody_answers, docker, stack)
        assert provision.problems == [], [problem.line() for problem in provision.problems]
        assert set(provision.started) == set(TEST_SERVERS)
        started = ours() - before
        assert len(started) == 3
        urls = provision.environment()
        similarity = asyncio.run(
            trigram_similarity_and_a_quorum_queue(urls["DATABASE_URL"], urls["AMQP_URL"])
        )
        assert 0 < similarity < 1
    assert not started & ours(), "a container outlived its run"

    # The suite, where no server answers: its plugin starts the three, and removes them after.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *SLICE],
        env={**os.environ, **nobody_answers},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "2 passed" in result.stdout
    [line] = [line for line in result.stdout.splitlines() if line.startswith("Started in")]
    assert line.startswith("Started in containers, as no server answered: PostgreSQL at ")
    assert ", RabbitMQ at " in line
    assert ", Redis at " in line
    assert ours() == before, "a container outlived the suite's run"
