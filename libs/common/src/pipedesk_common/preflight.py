"""The servers a command needs: PostgreSQL, RabbitMQ and Redis, found or started in Docker.

``python -m pipedesk_common.preflight`` checks PostgreSQL (``DATABASE_URL``), RabbitMQ
(``AMQP_URL``) and, when ``REDIS_URL`` is set, Redis. It prints one line per server that does not
answer, naming it and how to start it, and exits 1 — within seconds, never with a stack trace.

``python -m pipedesk_common.preflight -- COMMAND…`` (``make run``) provides the servers, then runs
COMMAND with them. A server that answers is always used. One that does not is started in a
container when a Docker daemon answers; COMMAND gets its address in the same setting, and the
container is removed when COMMAND ends (Ctrl-C included). With neither, one line per server names
both ways out and COMMAND does not run. The pytest plugin provides the test session's servers in
the same way (``provide``), Redis included.

Docker is reached through one seam, ``Containers``; ``pipedesk_common.containers`` is its real side.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from types import FrameType
from typing import Final, Protocol
from urllib.parse import urlsplit

import aio_pika
import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from pipedesk_common.db import connect_raw
from pipedesk_common.settings import DEFAULT_AMQP_URL, DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL

TIMEOUT_SECONDS: Final = 5.0
# How long a server started in a container may take to answer (a first start pulls no image: the
# pull happens before; this is the server's own start).
READY_SECONDS: Final = 120.0


def reason(exc: BaseException) -> str:
    """An exception as a short reason: its type and the first line of its message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def check_postgres(url: str) -> str | None:
    """None when PostgreSQL answers at ``url``; otherwise why not."""
    try:
        connection = await connect_raw(url, database="postgres", connect_timeout=TIMEOUT_SECONDS)
        await connection.close()
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return reason(exc)
    return None


async def check_rabbitmq(url: str) -> str | None:
    """None when RabbitMQ answers at ``url``; otherwise why not."""
    try:
        connection = await asyncio.wait_for(
            aio_pika.connect(url, timeout=TIMEOUT_SECONDS), TIMEOUT_SECONDS + 1
        )
        await connection.close()
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
        return reason(exc)
    return None


async def check_redis(url: str) -> str | None:
    """None when Redis answers ``PING`` at ``url``; otherwise why not."""
    client = Redis.from_url(
        url, socket_connect_timeout=TIMEOUT_SECONDS, socket_timeout=TIMEOUT_SECONDS
    )
    try:
        await client.ping()
    except (OSError, RedisError) as exc:
        return reason(exc)
    finally:
        await client.aclose()
    return None


@dataclass(frozen=True)
class Server:
    name: str
    key: str  # names its image and its containers
    setting: str
    default_url: str
    default_port: int
    how_to_start: str
    check: Callable[[str], Awaitable[str | None]] = field(repr=False)

    def url(self, environ: Mapping[str, str]) -> str:
        return environ.get(self.setting) or self.default_url

    def where(self, url: str) -> str:
        parts = urlsplit(url)
        return f"{parts.hostname or 'localhost'}:{parts.port or self.default_port}"


POSTGRESQL: Final = Server(
    "PostgreSQL",
    "postgresql",
    "DATABASE_URL",
    DEFAULT_DATABASE_URL,
    5432,
    "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    check_postgres,
)
RABBITMQ: Final = Server(
    "RabbitMQ",
    "rabbitmq",
    "AMQP_URL",
    DEFAULT_AMQP_URL,
    5672,
    "rabbitmq-server -detached",
    check_rabbitmq,
)
REDIS: Final = Server(
    "Redis",
    "redis",
    "REDIS_URL",
    DEFAULT_REDIS_URL,
    6379,
    "redis-server --daemonize yes",
    check_redis,
)
# The test suite needs all three (the gateway's rate limits and the timeline's page cache are
# tested on Redis).
TEST_SERVERS: Final = (POSTGRESQL, RABBITMQ, REDIS)


def servers_of_the_system(environ: Mapping[str, str]) -> tuple[Server, ...]:
    """What the services need: PostgreSQL and RabbitMQ; Redis only when ``REDIS_URL`` is set."""
    return (POSTGRESQL, RABBITMQ, REDIS) if environ.get("REDIS_URL") else (POSTGRESQL, RABBITMQ)


@dataclass(frozen=True)
class Started:
    """A server started in a container: where it answers, what it is, whether it is kept."""

    url: str
    description: str
    kept: bool = False


class ContainerStartFailed(Exception):
    """Docker answered, but the server's container could not be started."""


class Containers(Protocol):
    """The one seam between the preflight and Docker."""

    def unavailable(self) -> str | None:
        """None when a Docker daemon answers; otherwise why it does not."""

    def start(self, server: Server, url: str) -> AbstractContextManager[Started]:
        """``server`` in a container, in place of the one expected at ``url``; removed on exit
        (unless kept). Returns once the container runs; raises ``ContainerStartFailed``."""


@dataclass(frozen=True)
class Unreachable:
    server: Server
    where: str
    reason: str
    docker: str | None = None  # why Docker could not start it, when it was asked to

    def line(self) -> str:
        text = (
            f"{self.server.name} is not reachable at {self.where} ({self.reason}); "
            f"start it with: {self.server.how_to_start}"
        )
        if self.docker is not None:
            text += (
                f" — or have it started in a container: start Docker ({self.docker}) and run "
                "this again"
            )
        return text


@dataclass
class Provision:
    """The servers a command gets: their URLs, which were started in containers, what failed."""

    urls: dict[str, str]
    started: dict[Server, Started] = field(default_factory=dict)
    problems: list[Unreachable] = field(default_factory=list)

    def environment(self) -> dict[str, str]:
        """The settings that differ from the environment: those of the servers started here."""
        return {server.setting: self.urls[server.setting] for server in self.started}

    def line(self) -> str | None:
        """One line naming the servers started in containers, or None when all were found."""
        if not self.started:
            return None
        listed = ", ".join(
            f"{server.name} at {server.where(started.url)} ({started.description})"
            for server, started in self.started.items()
        )
        kept = all(started.kept for started in self.started.values())
        ending = "kept after this run" if kept else "removed when this run ends"
        return f"Started in containers, as no server answered: {listed}; {ending}"


async def _unanswered(servers: Sequence[Server], urls: Mapping[str, str]) -> dict[Server, str]:
    reasons = await asyncio.gather(*(server.check(urls[server.setting]) for server in servers))
    return {server: why for server, why in zip(servers, reasons, strict=True) if why is not None}


async def _until_answering(server: Server, url: str, seconds: float) -> str | None:
    deadline = time.monotonic() + seconds
    while True:
        why = await server.check(url)
        if why is None or time.monotonic() >= deadline:
            return why
        await asyncio.sleep(0.5)


def check(servers: Sequence[Server], environ: Mapping[str, str]) -> list[Unreachable]:
    """The servers that do not answer, each with why not (Docker is not asked)."""
    urls = {server.setting: server.url(environ) for server in servers}
    missing = asyncio.run(_unanswered(servers, urls))
    return [
        Unreachable(server, server.where(urls[server.setting]), why)
        for server, why in missing.items()
    ]


def provide(
    servers: Sequence[Server],
    environ: Mapping[str, str],
    containers: Containers,
    stack: ExitStack,
    *,
    ready_seconds: float = READY_SECONDS,
) -> Provision:
    """Every server of ``servers``: the one that answers at its setting's URL, else one started
    in a container (entered on ``stack``, so closing it removes the containers). When Docker does
    not answer either, or a container fails, ``problems`` says so and nothing stays started."""
    urls = {server.setting: server.url(environ) for server in servers}
    provision = Provision(urls)
    missing = asyncio.run(_unanswered(servers, urls))
    if not missing:
        return provision
    docker_problem = containers.unavailable()
    if docker_problem is not None:
        provision.problems = [
            Unreachable(server, server.where(urls[server.setting]), why, docker=docker_problem)
            for server, why in missing.items()
        ]
        return provision
    with ExitStack() as started_here:
        for server, why in missing.items():
            where = server.where(urls[server.setting])
            try:
                started = started_here.enter_context(containers.start(server, urls[server.setting]))
            except ContainerStartFailed as exc:
                failure = f"its container failed: {exc}"
            else:
                not_ready = asyncio.run(_until_answering(server, started.url, ready_seconds))
                if not_ready is None:
                    provision.started[server] = started
                    continue
                failure = (
                    f"its container at {server.where(started.url)} did not answer within "
                    f"{ready_seconds:g} s: {not_ready}"
                )
            provision.problems.append(Unreachable(server, where, why, docker=failure))
        if provision.problems:  # nothing stays started: leaving the block removes them
            provision.started.clear()
            return provision
        stack.enter_context(started_here.pop_all())
    urls.update({server.setting: started.url for server, started in provision.started.items()})
    return provision


def run_with_servers(
    command: Sequence[str], environ: Mapping[str, str], containers: Containers
) -> int:
    """Run ``command`` with the servers of the system; containers started for it are removed
    when it ends. SIGINT and SIGTERM are passed on to it. Returns its exit code."""
    with ExitStack() as stack:
        provision = provide(servers_of_the_system(environ), environ, containers, stack)
        for problem in provision.problems:
            print(problem.line(), file=sys.stderr)
        if provision.problems:
            return 1
        if (line := provision.line()) is not None:
            print(line, flush=True)
        child = subprocess.Popen(  # noqa: S603 - the Makefile chooses the command
            list(command), env={**environ, **provision.environment()}
        )

        def pass_on(signum: int, frame: FrameType | None) -> None:
            child.send_signal(signum)

        previous = {sig: signal.signal(sig, pass_on) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            code = child.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return code if code >= 0 else 128 - code


def main(argv: Sequence[str] | None = None) -> int:
    # aiormq logs its own connection errors; the lines below say all that matters.
    for noisy in ("aiormq", "aio_pika"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["--"] and len(arguments) > 1:
        from pipedesk_common.containers import DockerContainers

        return run_with_servers(
            arguments[1:], os.environ, DockerContainers.from_environment(os.environ)
        )
    if arguments:
        print("usage: python -m pipedesk_common.preflight [-- COMMAND…]", file=sys.stderr)
        return 2
    problems = check(servers_of_the_system(os.environ), os.environ)
    for problem in problems:
        print(problem.line(), file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
