"""An org's retention of what a Google service mirrors: how many days an item is kept, applied
by a periodic job on the database-leased scheduler (``pipedesk_common.periodic``).

A product keeps each org's limit in a table of its org settings (``org_id``, a nullable
``retention_days``: null keeps everything) and says how its items older than a cutoff leave
(``Expire``: in the org's one transaction, each copy announced as dropped by its holder, timeline
status ``removed``, then deleted from the mirror). The timeline drops the copy, and an item no
other copy holds leaves every timeline. ``retention_job`` is the job: every org with a limit, its
cutoff reckoned on the service's clock, one transaction per org.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import Field
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from pipedesk_common.clock import Clock
from pipedesk_common.contract import JSON_NUMBER
from pipedesk_common.periodic import PeriodicJob
from pipedesk_common.uow import UnitOfWork

# Items of org ``org_id`` older than ``cutoff`` removed in ``session``'s transaction: how many.
Expire = Callable[[AsyncSession, str, datetime], Awaitable[int]]

MAX_RETENTION_DAYS = 36500
# An org setting's retention in days as a body gives it: a whole number, never ``true``.
RetentionDays = Annotated[int, Field(ge=1, le=MAX_RETENTION_DAYS), JSON_NUMBER]


async def orgs_with_retention(session: AsyncSession, settings: Table) -> Sequence[Any]:
    """``(org_id, retention_days)`` of every org with a limit, in ``settings`` (a table keyed by
    ``org_id`` with a ``retention_days`` column)."""
    return (
        await session.execute(
            select(settings.c.org_id, settings.c.retention_days)
            .where(settings.c.retention_days.is_not(None))
            .order_by(settings.c.org_id)
        )
    ).all()


async def apply_retention(uow: UnitOfWork, clock: Clock, settings: Table, expire: Expire) -> int:
    """Every org's retention (see the module docstring); how many items left, in all."""
    now = clock.now()
    async with uow.read() as session:
        limits = await orgs_with_retention(session, settings)
    removed = 0
    for org_id, days in limits:
        async with uow.write() as session:
            removed += await expire(session, org_id, now - timedelta(days=int(days)))
    return removed


def retention_job(
    name: str, interval: timedelta, uow: UnitOfWork, clock: Clock, settings: Table, expire: Expire
) -> PeriodicJob:
    """The periodic job ``name`` applying every org's retention each ``interval``."""
    return PeriodicJob(name, interval, lambda: apply_retention(uow, clock, settings, expire))
