"""The calendar service's own periodic jobs (the kit adds channel renewal and key pruning)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from calendar_service.repository import CalendarRepository
from calendar_service.retention import SETTINGS_TABLE, expire_events
from calendar_service.sync import CalendarRuntime, sync_key
from pipedesk_common.mirror.keys import SyncKey
from pipedesk_common.mirror.retention import retention_job
from pipedesk_common.periodic import PeriodicJob


async def watched_keys(session: AsyncSession) -> list[SyncKey]:
    return [
        sync_key(calendar) for calendar in await CalendarRepository(session).watched_calendars()
    ]


def calendar_jobs(runtime: CalendarRuntime) -> list[PeriodicJob]:
    """Push is not guaranteed: every watched calendar is synced anyway, and syncs left behind
    (by a process that died, or a failure) are run. Each org's retention is applied."""
    settings = runtime.settings
    interval = timedelta(seconds=settings.reconcile_interval_seconds)
    return [
        PeriodicJob("calendar.reconcile", interval, lambda: runtime.work.sync_all(watched_keys)),
        retention_job(
            "calendar.retention",
            timedelta(seconds=settings.retention_interval_seconds),
            runtime.uow,
            runtime.clock,
            SETTINGS_TABLE,
            expire_events(runtime.clock),
        ),
    ]
