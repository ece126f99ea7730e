"""The calendar service's periodic jobs (each runs once per interval across all replicas)."""

from __future__ import annotations

import logging
from datetime import timedelta

from calendar_service.repository import CalendarRepository
from calendar_service.service import CalendarRuntime
from calendar_service.settings import CalendarSettings
from calendar_service.sync import sync_key
from pipedesk_common.periodic import PeriodicJob

log = logging.getLogger(__name__)


async def renew_channels(runtime: CalendarRuntime) -> int:
    return await runtime.channels.renew_due()


async def reconcile(runtime: CalendarRuntime) -> int:
    """Push is not guaranteed: every watched calendar is synced anyway, and requests left
    behind by a process that died (or by a failed sync) are drained."""
    async with runtime.sessionmaker.begin() as session:
        calendars = await CalendarRepository(session).watched_calendars()
        for calendar_id in calendars:
            await runtime.coalescer.request(session, sync_key(calendar_id))
    runs = 0
    for key in await runtime.coalescer.pending_keys():
        try:
            runs += await runtime.coalescer.drain(key, runtime.sync_work)
        except Exception:  # one user's failure (revoked access…) must not stop the others
            log.warning("reconciliation sync of %s failed", key, exc_info=True)
    return runs


async def prune_idempotency_keys(runtime: CalendarRuntime) -> int:
    async with runtime.sessionmaker.begin() as session:
        return await runtime.idempotency.prune(session)


def calendar_jobs(runtime: CalendarRuntime, settings: CalendarSettings) -> list[PeriodicJob]:
    return [
        PeriodicJob(
            "calendar.renew-channels",
            timedelta(seconds=settings.renew_interval_seconds),
            lambda: renew_channels(runtime),
        ),
        PeriodicJob(
            "calendar.reconcile",
            timedelta(seconds=settings.reconcile_interval_seconds),
            lambda: reconcile(runtime),
        ),
        PeriodicJob(
            "calendar.prune-idempotency-keys",
            timedelta(hours=1),
            lambda: prune_idempotency_keys(runtime),
        ),
    ]
