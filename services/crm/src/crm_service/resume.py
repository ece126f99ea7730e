"""Unfinished lifecycle jobs resumed without a request: a periodic job on the database-leased
scheduler (``pipedesk_common.periodic``), so one CRM process across replicas runs each turn.

A job is unfinished while its status is ``running``; the resumer takes those that no live
process runs (no lease, or one expired: the process that held it died) and runs each on from
where it stopped, under its own lease, as the admin's repeated request would.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from uuid import UUID

from sqlalchemy import or_, select

from crm_service.deletion import GoogleDataDeletions
from crm_service.lifecycle import LifecycleContext, UserLifecycle
from crm_service.models import GoogleDataDeletionJob, UserDeactivationJob
from pipedesk_common.messaging import raise_if_cancelling
from pipedesk_common.periodic import PeriodicJob

RESUME_JOB = "crm.resume-lifecycle-jobs"

log = logging.getLogger(__name__)


class LifecycleResumer:
    """Resumes every unfinished deactivation, deletion and offboarding no one runs."""

    def __init__(self, context: LifecycleContext) -> None:
        self.sessionmaker = context.sessionmaker
        self.clock = context.clock
        self.settings = context.settings
        self.deactivations = UserLifecycle(context)
        self.deletions = GoogleDataDeletions(context)

    def periodic(self) -> PeriodicJob:
        return PeriodicJob(
            RESUME_JOB, timedelta(seconds=self.settings.lifecycle_resume_seconds), self.run
        )

    async def run(self) -> int:
        """Resume each unfinished job no live process holds; how many were resumed. A job that
        fails stays unfinished for the next turn, the others go on."""
        resumed = 0
        for model, resume in (
            (UserDeactivationJob, self.deactivations.resume),
            (GoogleDataDeletionJob, self.deletions.resume),
        ):
            for job_id in await self._unheld(model):
                resumed += await self._resume(resume, job_id)
        return resumed

    async def _unheld(
        self, model: type[UserDeactivationJob] | type[GoogleDataDeletionJob]
    ) -> list[UUID]:
        table = model.__table__  # type: ignore[union-attr]
        async with self.sessionmaker() as session:
            found = await session.scalars(
                select(table.c.id)
                .where(
                    table.c.status == "running",
                    or_(
                        table.c.lease_holder.is_(None),
                        table.c.lease_expires_at <= self.clock.now(),
                    ),
                )
                .order_by(table.c.created_at)
            )
            return list(found.all())

    async def _resume(self, resume: Callable[[UUID], Awaitable[object]], job_id: UUID) -> int:
        try:
            await resume(job_id)
        except Exception:
            raise_if_cancelling()
            log.exception("could not resume lifecycle job %s", job_id)
            return 0
        return 1
