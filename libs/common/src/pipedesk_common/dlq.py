"""``python -m pipedesk_common.dlq list|replay QUEUE``: inspect and replay dead letters.

``list`` shows what sits in ``<queue>.dlq`` (nothing is removed). ``replay`` sends dead letters back
to ``<queue>`` itself — not to the events exchange, so other subscribers see nothing twice — with
their attempt count reset, and removes each from the DLQ only after the broker confirmed it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from pipedesk_common.events.envelope import MalformedEvent, UnknownEventType, decode_event
from pipedesk_common.messaging import (
    ATTEMPT_HEADER,
    ERROR_HEADER,
    Topology,
    attempts_of,
    connect,
)
from pipedesk_common.settings import DEFAULT_AMQP_URL, DEFAULT_DATABASE_URL, derived_broker_prefix


@dataclass(frozen=True)
class DeadLetter:
    event_id: str
    type: str
    reason: str
    attempts: int
    """Handler failures (a message rejected as malformed counts one)."""
    error: str | None = None
    """The handler's last error before the final attempt (none after a single attempt)."""


def _envelope_id(body: bytes) -> str:
    """The id an unreadable event claims, if it claims one, so it can be found and replayed."""
    try:
        envelope = json.loads(body)
    except ValueError:
        return "?"
    claimed = envelope.get("id") if isinstance(envelope, dict) else None
    return claimed if isinstance(claimed, str) and 0 < len(claimed) <= 100 else "?"


def describe(message: AbstractIncomingMessage) -> DeadLetter:
    headers: dict[str, Any] = dict(message.headers or {})
    try:
        event = decode_event(message.body, message.content_type)
        event_id, event_type = str(event.id), event.type.name
    except (MalformedEvent, UnknownEventType) as exc:
        event_id, event_type = _envelope_id(message.body), f"unreadable ({type(exc).__name__})"
    # x-death lists the most recent death first; earlier ones are the retry queues' expiries.
    deaths = headers.get("x-death") or []
    latest = deaths[0] if deaths and isinstance(deaths[0], dict) else {}
    reason = str(latest.get("reason", "?"))
    # A handler failure that exhausted the attempts is rejected without a new attempt header.
    failures = attempts_of(headers) + (1 if reason == "rejected" else 0)
    error = headers.get(ERROR_HEADER)
    return DeadLetter(
        event_id, event_type, reason, failures, str(error) if error is not None else None
    )


async def list_dead_letters(amqp_url: str, queue: str, *, limit: int = 1000) -> list[DeadLetter]:
    connection = await connect(amqp_url, name="dlq-list")
    try:
        channel = await connection.channel()
        dlq = await channel.get_queue(Topology.dead_letter_queue(queue), ensure=True)
        found: list[DeadLetter] = []
        held: list[AbstractIncomingMessage] = []
        while len(found) < limit:
            message = await dlq.get(no_ack=False, fail=False)
            if message is None:
                break
            held.append(message)
            found.append(describe(message))
        for message in held:
            await message.nack(requeue=True)
        return found
    finally:
        await connection.close()


async def replay_dead_letters(
    amqp_url: str, queue: str, *, event_id: str | None = None, limit: int = 1000
) -> int:
    connection = await connect(amqp_url, name="dlq-replay")
    try:
        channel = await connection.channel(publisher_confirms=True)
        dlq = await channel.get_queue(Topology.dead_letter_queue(queue), ensure=True)
        replayed = 0
        skipped: list[AbstractIncomingMessage] = []
        for _ in range(limit):
            message = await dlq.get(no_ack=False, fail=False)
            if message is None:
                break
            if event_id is not None and describe(message).event_id != event_id:
                skipped.append(message)
                continue
            headers = {
                key: value
                for key, value in (message.headers or {}).items()
                if not key.startswith("x-death")
                and not key.startswith("x-first-death")
                and not key.startswith("x-last-death")
                and key not in {ATTEMPT_HEADER, ERROR_HEADER}
            }
            await channel.default_exchange.publish(
                aio_pika.Message(
                    message.body,
                    content_type=message.content_type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    headers=headers,
                ),
                routing_key=queue,
                timeout=10,
            )
            await message.ack()
            replayed += 1
        for message in skipped:
            await message.nack(requeue=True)
        return replayed
    finally:
        await connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipedesk_common.dlq", description=__doc__)
    parser.add_argument("command", choices=["list", "replay"])
    parser.add_argument("queue", help="the consumer queue, e.g. timeline.items")
    parser.add_argument(
        "--prefix",
        help="the stack's broker namespace (default: BROKER_PREFIX, or as derived from "
        "DATABASE_URL when unset, as the services do)",
        default=os.environ.get("BROKER_PREFIX")
        if "BROKER_PREFIX" in os.environ
        else derived_broker_prefix(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)),
    )
    parser.add_argument("--event-id", help="replay only this event")
    args = parser.parse_args(argv)
    amqp_url = os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)
    queue = Topology(args.prefix).queue(args.queue)
    if args.command == "list":
        letters = asyncio.run(list_dead_letters(amqp_url, queue))
        for letter in letters:
            error = f"\terror={letter.error}" if letter.error else ""
            print(
                f"{letter.event_id}\t{letter.type}\t{letter.reason}"
                f"\tattempts={letter.attempts}{error}"
            )
        print(
            f"{len(letters)} dead letter(s) in {Topology.dead_letter_queue(queue)}", file=sys.stderr
        )
        return 0
    count = asyncio.run(replay_dead_letters(amqp_url, queue, event_id=args.event_id))
    print(f"replayed {count} dead letter(s) to {queue}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
