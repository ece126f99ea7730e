"""Incremental sync of one calendar into the mirror.

From the stored ``syncToken``, page by page; each page is applied in its own short transaction
(never one held open across a Google call), and the new ``syncToken`` is stored only after the
last page, so a sync that dies half-way starts again from the old token and re-applies pages
harmlessly. Google's ``410`` on the token means a full sync: every live event is listed, and the
mirrored events Google no longer lists are cancelled.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from uuid import UUID

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from calendar_service.google import CalendarGoogle, SyncTokenExpired
from calendar_service.mirror import CANCELLED, apply_event
from calendar_service.models import UserCalendar, owner_of
from calendar_service.repository import CalendarRepository
from pipedesk_common.clock import Clock

log = logging.getLogger(__name__)

SYNC_RUNS = Counter(
    "pipedesk_calendar_syncs_total", "Calendar syncs by kind and outcome", ["kind", "outcome"]
)

KEY_PREFIX = "calendar-sync:"


def sync_key(calendar_id: UUID) -> str:
    """The coalescer's key for one calendar's sync."""
    return f"{KEY_PREFIX}{calendar_id}"


def calendar_of_key(key: str) -> UUID:
    return UUID(key.removeprefix(KEY_PREFIX))


@dataclass
class SyncOutcome:
    full: bool = False
    pages: int = 0
    items: int = 0


class CalendarSync:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        google: CalendarGoogle,
        clock: Clock,
        *,
        page_size: int = 250,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.google = google
        self.clock = clock
        self.page_size = page_size

    async def run_key(self, key: str) -> None:
        """The coalescer's work function."""
        await self.sync(calendar_of_key(key))

    async def sync(self, calendar_id: UUID) -> SyncOutcome:
        async with self.sessionmaker() as session:
            calendar = await CalendarRepository(session).calendar(calendar_id)
        if calendar is None:
            return SyncOutcome()
        if calendar.sync_token is not None:
            try:
                outcome = await self._pages(calendar, calendar.sync_token)
            except SyncTokenExpired:
                log.info("sync token of calendar %s expired; full sync", calendar_id)
                SYNC_RUNS.labels("incremental", "expired").inc()
            else:
                SYNC_RUNS.labels("incremental", "done").inc()
                return outcome
        outcome = await self._pages(calendar, None)
        SYNC_RUNS.labels("full", "done").inc()
        return outcome

    async def _pages(self, calendar: UserCalendar, sync_token: str | None) -> SyncOutcome:
        user = owner_of(calendar)
        outcome = SyncOutcome(full=sync_token is None)
        seen: set[str] = set()
        page_token: str | None = None
        while True:
            page = await self.google.page(
                user,
                calendar.google_id,
                sync_token=sync_token,
                page_token=page_token,
                page_size=self.page_size,
            )
            outcome.pages += 1
            outcome.items += len(page.items)
            async with self.sessionmaker.begin() as session:
                for resource in page.items:
                    seen.add(str(resource["id"]))
                    await apply_event(session, self.clock, calendar, resource, actor_id=None)
            if page.next_page_token:
                page_token = page.next_page_token
                continue
            async with self.sessionmaker.begin() as session:
                repository = CalendarRepository(session)
                if outcome.full:
                    await self._cancel_unlisted(session, calendar, seen)
                locked = await repository.calendar(calendar.id, for_update=True)
                if locked is not None:
                    locked.sync_token = page.next_sync_token
                    locked.synced_at = self.clock.now()
            return outcome

    async def _cancel_unlisted(
        self, session: AsyncSession, calendar: UserCalendar, seen: set[str]
    ) -> None:
        """After a full listing: what the mirror holds but Google no longer lists is gone."""
        repository = CalendarRepository(session)
        for google_id in await repository.live_google_ids(calendar.id):
            if google_id in seen:
                continue
            stored = await repository.event_by_google_id(calendar.id, google_id)
            assert stored is not None
            gone = {**stored.resource, "status": CANCELLED, "etag": f"{stored.etag}-unlisted"}
            await apply_event(session, self.clock, calendar, gone, actor_id=None)
