"""``python -m pipedesk_common.preflight``: are PostgreSQL and RabbitMQ reachable?

Prints one line naming the server that does not answer and how to start it, and exits 1 —
within seconds, so ``make run`` and ``make test`` never hang or fail with a stack trace.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from dataclasses import dataclass

import aio_pika
import asyncpg
from sqlalchemy import make_url

from pipedesk_common.db import connect_raw
from pipedesk_common.settings import DEFAULT_AMQP_URL, DEFAULT_DATABASE_URL

TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Unreachable:
    server: str
    where: str
    how_to_start: str
    reason: str

    def line(self) -> str:
        return (
            f"{self.server} is not reachable at {self.where} ({self.reason}); "
            f"start it with: {self.how_to_start}"
        )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def check_postgres(url: str) -> Unreachable | None:
    parsed = make_url(url)
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    try:
        connection = await connect_raw(url, database="postgres", connect_timeout=TIMEOUT_SECONDS)
        await connection.close()
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return Unreachable(
            "PostgreSQL",
            where,
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
            _reason(exc),
        )
    return None


async def check_rabbitmq(url: str) -> Unreachable | None:
    parsed = make_url(url.replace("amqp://", "amqp+x://", 1))
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5672}"
    try:
        connection = await asyncio.wait_for(
            aio_pika.connect(url, timeout=TIMEOUT_SECONDS), TIMEOUT_SECONDS + 1
        )
        await connection.close()
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
        return Unreachable("RabbitMQ", where, "rabbitmq-server -detached", _reason(exc))
    return None


async def unreachable_servers(database_url: str, amqp_url: str) -> list[Unreachable]:
    results = await asyncio.gather(check_postgres(database_url), check_rabbitmq(amqp_url))
    return [result for result in results if result is not None]


def main() -> int:
    # aiormq logs its own connection errors; the one line below says all that matters.
    for noisy in ("aiormq", "aio_pika"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    database_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    amqp_url = os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)
    problems = asyncio.run(unreachable_servers(database_url, amqp_url))
    for problem in problems:
        print(problem.line(), file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
