"""RabbitMQ topology and connections shared by the outbox relay and the consumers.

- ``<prefix>pipedesk.events``: the topic exchange every service publishes to;
- ``<prefix>pipedesk.dlx``: the dead-letter exchange;
- per consumer queue ``<queue>``: a quorum queue with a delivery limit, dead-lettering at least
  once to ``<queue>.dlq``; retry queues ``<queue>.retry.<ms>`` whose messages expire back into
  ``<queue>`` after a delay, so a failing message backs off instead of spinning; and the marker
  ``<queue>.stack`` of the stack the queue belongs to.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractQueue

ATTEMPT_HEADER: Final = "x-pipedesk-attempt"
"""On a message sent back through a retry queue: how many times handlers failed on it."""
ERROR_HEADER: Final = "x-pipedesk-error"
"""On a message sent back through a retry queue: why the handler failed (its first 500
characters); the dead letter it becomes keeps it, for ``pipedesk_common.dlq list``."""
ERROR_HEADER_LENGTH: Final = 500


def attempts_of(headers: Mapping[str, Any] | None) -> int:
    """How many times our handlers already failed on this message."""
    value = (headers or {}).get(ATTEMPT_HEADER, 0)
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else 0


BROKER_ERRORS: Final[tuple[type[BaseException], ...]] = (
    aio_pika.exceptions.AMQPException,
    OSError,
    ConnectionError,
    TimeoutError,
)
"""What a lost or refused broker link raises."""


def with_heartbeat(url: str, heartbeat: int) -> str:
    """The AMQP URL with a heartbeat, so a hung link is noticed within two heartbeats."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("heartbeat", str(heartbeat))
    return urlunsplit(parts._replace(query=urlencode(query)))


async def connect(
    url: str, *, name: str, heartbeat: int = 10, connect_timeout: float = 5.0
) -> AbstractConnection:
    """A plain (not "robust") connection: ``reconnecting`` reconnects and redeclares everything.

    aio-pika's robust connection is known to lose consumers and fail publishes and acks around a
    reconnect; an explicit reconnect loop is simpler to reason about and to test.
    """
    connection = await aio_pika.connect(
        with_heartbeat(url, heartbeat),
        timeout=connect_timeout,
        client_properties={"connection_name": name},
    )
    return connection


def raise_if_cancelling() -> None:
    """Inside an ``except``: a cancellation that a library turned into an error is still one."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def closed(connection: AbstractConnection | AbstractChannel) -> None:
    """Wait until the connection (or the channel) closes, for whatever reason."""
    done = asyncio.get_running_loop().create_future()

    def on_close(*_args: Any) -> None:
        if not done.done():
            done.set_result(None)

    connection.close_callbacks.add(on_close)
    if connection.is_closed:
        return
    await done


STACK_ARGUMENT: Final = "x-pipedesk-stack"
_CURRENT_VALUE = re.compile(r"current is '([^']*)'")


class StackMismatch(Exception):
    """A queue this process would consume belongs to another stack (another database): two
    stacks share a broker namespace, and would take each other's events."""

    def __init__(self, queue: str, ours: str, theirs: str | None, prefix: str) -> None:
        self.queue, self.ours, self.theirs = queue, ours, theirs
        owner = f"the stack of database {theirs!r}" if theirs else "another stack"
        namespace = f"the broker namespace {prefix!r}" if prefix else "the unprefixed namespace"
        super().__init__(
            f"queue {queue} belongs to {owner}, not to this one (database {ours!r}): two "
            f"stacks share {namespace} on this broker and would take each other's events. Give "
            "this stack a namespace of its own: leave BROKER_PREFIX unset, and it is derived "
            "from the database's name, or set another one; or use another RabbitMQ vhost. "
            "Replicas of one stack share their queues: they use a database of the same name."
        )


@dataclass(frozen=True)
class Topology:
    """Names of the exchanges and queues; ``prefix`` isolates a test run or a second stack.

    A consumer's queue belongs to one ``stack`` (its database's name): the queue carries it as
    ``x-pipedesk-stack``, and a process of another stack that declares it is refused with
    ``StackMismatch``. RabbitMQ compares only the arguments it knows when a queue is declared
    again, so the stack is also kept where it compares it: in the dead-letter routing key of a
    marker queue ``<queue>.stack``, which receives no message.

    An ephemeral stack (a test run, a benchmark) also sets ``queue_ledger``: a file to which every
    process of the stack appends the names of the queues it declares, so that the stack's teardown
    can delete exactly those (``delete_ledger_queues``) instead of leaving them to expire.
    """

    prefix: str = ""
    queue_expires_ms: int | None = None
    queue_ledger: Path | None = None
    stack: str | None = None

    def _record(self, *queues: str) -> None:
        if self.queue_ledger is not None:
            with self.queue_ledger.open("a", encoding="utf-8") as ledger:
                ledger.write("".join(f"{queue}\n" for queue in queues))

    def _queue_arguments(self, arguments: dict[str, Any]) -> dict[str, Any]:
        if self.queue_expires_ms is not None:
            return {**arguments, "x-expires": self.queue_expires_ms}
        return arguments

    @property
    def events_exchange(self) -> str:
        return f"{self.prefix}pipedesk.events"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.prefix}pipedesk.dlx"

    def queue(self, name: str) -> str:
        return f"{self.prefix}{name}"

    @staticmethod
    def dead_letter_queue(queue: str) -> str:
        return f"{queue}.dlq"

    @staticmethod
    def retry_queue(queue: str, delay_ms: int) -> str:
        return f"{queue}.retry.{delay_ms}"

    @staticmethod
    def stack_marker_queue(queue: str) -> str:
        return f"{queue}.stack"

    async def claim(self, connection: AbstractConnection, queue: str) -> None:
        """Make ``queue`` this stack's, or raise ``StackMismatch`` if another stack's it is."""
        if self.stack is None:
            return
        channel = await connection.channel()
        try:
            await channel.declare_queue(
                self.stack_marker_queue(queue),
                durable=True,
                arguments=self._queue_arguments(
                    {
                        STACK_ARGUMENT: self.stack,
                        "x-dead-letter-exchange": "",
                        "x-dead-letter-routing-key": f"{STACK_ARGUMENT}={self.stack}",
                    }
                ),
            )
        except aio_pika.exceptions.ChannelPreconditionFailed as refused:
            found = _CURRENT_VALUE.search(str(refused))
            theirs = found.group(1).removeprefix(f"{STACK_ARGUMENT}=") if found else None
            raise StackMismatch(queue, self.stack, theirs, self.prefix) from refused
        if not channel.is_closed:
            await channel.close()

    async def delete_exchanges(self, channel: AbstractChannel) -> None:
        """Remove this prefix's exchanges (an ephemeral stack's teardown)."""
        await channel.exchange_delete(self.events_exchange)
        await channel.exchange_delete(self.dead_letter_exchange)

    async def delete_ledger_queues(self, channel: AbstractChannel) -> int:
        """Remove every queue of this prefix the ledger lists (an ephemeral stack's teardown)."""
        if self.queue_ledger is None or not self.queue_ledger.exists():
            return 0
        names = set(self.queue_ledger.read_text(encoding="utf-8").split())
        queues = sorted(name for name in names if name.startswith(self.prefix))
        for queue in queues:
            await channel.queue_delete(queue)
        return len(queues)

    async def declare_exchange(self, channel: AbstractChannel) -> AbstractExchange:
        return await channel.declare_exchange(
            self.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )

    async def declare_consumer_queue(
        self,
        channel: AbstractChannel,
        queue: str,
        *,
        routing_keys: Iterable[str],
        delivery_limit: int,
        retry_delays_ms: Sequence[int],
    ) -> AbstractQueue:
        self._record(
            queue,
            self.dead_letter_queue(queue),
            *(self.retry_queue(queue, delay) for delay in retry_delays_ms),
            *([self.stack_marker_queue(queue)] if self.stack is not None else []),
        )
        events = await self.declare_exchange(channel)
        dead_letters = await channel.declare_exchange(
            self.dead_letter_exchange, aio_pika.ExchangeType.DIRECT, durable=True
        )
        dlq = await channel.declare_queue(
            self.dead_letter_queue(queue),
            durable=True,
            arguments=self._queue_arguments({"x-queue-type": "quorum"}),
        )
        await dlq.bind(dead_letters, routing_key=self.dead_letter_queue(queue))
        main = await channel.declare_queue(
            queue,
            durable=True,
            arguments=self._queue_arguments(
                {
                    "x-queue-type": "quorum",
                    "x-delivery-limit": delivery_limit,
                    "x-dead-letter-exchange": self.dead_letter_exchange,
                    "x-dead-letter-routing-key": self.dead_letter_queue(queue),
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                    **({STACK_ARGUMENT: self.stack} if self.stack is not None else {}),
                }
            ),
        )
        for routing_key in sorted(set(routing_keys)):
            await main.bind(events, routing_key=routing_key)
        for delay in retry_delays_ms:
            await channel.declare_queue(
                self.retry_queue(queue, delay),
                durable=True,
                arguments=self._queue_arguments(
                    {
                        "x-message-ttl": delay,
                        "x-dead-letter-exchange": "",
                        "x-dead-letter-routing-key": queue,
                    }
                ),
            )
        return main
