"""Periodic jobs that run once per interval across every process of a service.

Each job has a row holding when it is next due. A process runs the job only if it moves that time
forward itself (``UPDATE … WHERE due_at <= now``), so however many replicas wake up, one runs it.
A next turn set further ahead than the job's interval (a process with a longer one set it) is due
now: an interval made shorter takes effect at once, not after one more turn of the old length.
A run that fails is not retried before the next interval: jobs are reconciliations, written to
be safe to run again. Time comes from the ``Clock``: tests call ``run_if_due`` after moving it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from prometheus_client import Counter
from sqlalchemy import Column, DateTime, MetaData, String, Table, or_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pipedesk_common.clock import Clock
from pipedesk_common.messaging import raise_if_cancelling

log = logging.getLogger(__name__)

JOB_RUNS = Counter("pipedesk_periodic_job_runs_total", "Periodic job runs", ["job", "outcome"])


def job_schedule_table(metadata: MetaData) -> Table:
    return Table(
        "job_schedule",
        metadata,
        Column("name", String(100), primary_key=True),
        Column("due_at", DateTime(timezone=True), nullable=False),
        Column("last_started_at", DateTime(timezone=True), nullable=True),
    )


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    interval: timedelta
    run: Callable[[], Awaitable[object]]


class JobRunner:
    def __init__(
        self,
        table: Table,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        jobs: Sequence[PeriodicJob],
        *,
        tick_seconds: float = 5.0,
    ) -> None:
        self.table = table
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.jobs = list(jobs)
        self.tick_seconds = tick_seconds

    async def _claim(self, job: PeriodicJob) -> bool:
        table, now = self.table, self.clock.now()
        async with self.sessionmaker.begin() as session:
            await session.execute(
                insert(table).values(name=job.name, due_at=now).on_conflict_do_nothing()
            )
            claimed = await session.scalar(
                update(table)
                .where(
                    table.c.name == job.name,
                    or_(table.c.due_at <= now, table.c.due_at > now + job.interval),
                )
                .values(due_at=now + job.interval, last_started_at=now)
                .returning(table.c.name)
            )
        return claimed is not None

    async def run_if_due(self, job: PeriodicJob) -> bool:
        """Run ``job`` if it is due and no other process claimed this turn; True if it ran."""
        if not await self._claim(job):
            return False
        try:
            await job.run()
        except Exception:
            raise_if_cancelling()
            JOB_RUNS.labels(job.name, "failed").inc()
            log.exception("periodic job %s failed", job.name)
        else:
            JOB_RUNS.labels(job.name, "done").inc()
        return True

    async def run_forever(self) -> None:
        while True:
            for job in self.jobs:
                try:
                    await self.run_if_due(job)
                except Exception:  # the database may be away; the next tick tries again
                    raise_if_cancelling()
                    log.warning("could not schedule %s", job.name, exc_info=True)
            await asyncio.sleep(self.tick_seconds)

    @asynccontextmanager
    async def running(self, enabled: bool = True) -> AsyncIterator[None]:
        """Run the jobs in the background while the context is open."""
        if not enabled:
            yield
            return
        task = asyncio.create_task(self.run_forever(), name="periodic-jobs")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
