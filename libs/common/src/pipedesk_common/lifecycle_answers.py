"""A service's answers to the CRM's lifecycle jobs, remembered per job: a part called again
with the same ``job_id`` (the CRM died between the call and recording the answer, and resumed
the job) answers what the first call did, not the zeros of a part with nothing left to do, so
the job's report is the one an uninterrupted run makes.

One row per step and job (``lifecycle_answers``, in each service's schema): the counts answered
and a digest of whom the step was about (the user or the org), never their ids, so a deletion
or an offboarding leaves nothing of the user or the org in it. The same job id about someone
else is refused (``422`` on ``body.job_id``). Rows stay as long as the CRM's job does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pipedesk_common.clock import Clock
from pipedesk_common.errors import FieldError, InvalidInput
from pipedesk_common.idempotency import fingerprint


def lifecycle_answers_table(metadata: MetaData) -> Table:
    return Table(
        "lifecycle_answers",
        metadata,
        Column("step", String(40), nullable=False),
        Column("job_id", String(64), nullable=False),
        Column("fingerprint", String(64), nullable=False),
        Column("ended", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("step", "job_id"),
    )


class LifecycleAnswers:
    """The remembered answers of one service (its ``lifecycle_answers`` table)."""

    def __init__(
        self, table: Table, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock
    ) -> None:
        self.table = table
        self.sessionmaker = sessionmaker
        self.clock = clock

    async def once(
        self,
        step: str,
        job_id: str,
        subject: dict[str, Any],
        run: Callable[[], Awaitable[dict[str, int]]],
    ) -> dict[str, int]:
        """The answer remembered for ``job_id``'s ``step``, or ``run``'s, remembered."""
        digest = fingerprint(subject)
        remembered = await self._remembered(step, job_id, digest)
        if remembered is not None:
            return remembered
        ended = await run()
        async with self.sessionmaker.begin() as session:
            await session.execute(
                insert(self.table)
                .values(
                    step=step,
                    job_id=job_id,
                    fingerprint=digest,
                    ended=ended,
                    created_at=self.clock.now(),
                )
                .on_conflict_do_nothing(index_elements=["step", "job_id"])
            )
        # A concurrent call of the same job remembered first: its answer is the job's.
        return await self._remembered(step, job_id, digest) or ended

    async def _remembered(self, step: str, job_id: str, digest: str) -> dict[str, int] | None:
        table = self.table
        async with self.sessionmaker() as session:
            row = (
                await session.execute(
                    select(table.c.fingerprint, table.c.ended).where(
                        table.c.step == step, table.c.job_id == job_id
                    )
                )
            ).one_or_none()
        if row is None:
            return None
        if row.fingerprint != digest:
            raise InvalidInput(
                "this job id was answered for another user or org",
                errors=[
                    FieldError(
                        field="body.job_id",
                        message="already answered for another user or org",
                        code="reused",
                    )
                ],
            )
        return {str(kind): int(count) for kind, count in row.ended.items()}
