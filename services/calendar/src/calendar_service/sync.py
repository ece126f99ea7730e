"""Incremental sync of one calendar into the mirror, with the kit's paged sync.

From the stored ``syncToken``, page by page, each page in its own short transaction; the new
``syncToken`` is stored only after the last page, so a sync that dies half-way starts again
from the old token and re-applies pages harmlessly. Google's ``410`` on the token means a full
sync: every live event is listed, and the mirrored events Google no longer lists are cancelled.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from calendar_service.google import CANCELLED, CalendarGoogle, GoogleEvent
from calendar_service.mirror import apply_event, event_writer
from calendar_service.models import UserCalendar
from calendar_service.repository import CalendarRepository
from calendar_service.settings import CalendarSettings
from pipedesk_common.clock import Clock
from pipedesk_common.google.push import Channel
from pipedesk_common.google.resources import Page
from pipedesk_common.mirror.keys import SyncKey
from pipedesk_common.mirror.paged import Listed, PagedSync
from pipedesk_common.mirror.runtime import MirrorRuntime
from pipedesk_common.mirror.work import SyncRun
from pipedesk_common.uow import UnitOfWork

CalendarRuntime = MirrorRuntime[CalendarGoogle, CalendarSettings]


def sync_key(calendar: UserCalendar) -> SyncKey:
    """What a sync of one calendar is requested and coalesced as."""
    return SyncKey("calendar", calendar.org_id, calendar.user_id, str(calendar.id))


class CalendarSync:
    def __init__(
        self, uow: UnitOfWork, google: CalendarGoogle, clock: Clock, *, page_size: int = 250
    ) -> None:
        self.uow = uow
        self.google = google
        self.clock = clock
        self.page_size = page_size
        self.writer = event_writer(clock)
        self.listing = PagedSync[GoogleEvent]("calendar", uow)

    async def sync(self, calendar_id: UUID) -> Listed:
        async with self.uow.read() as session:
            calendar = await CalendarRepository(session).calendar(calendar_id)
        if calendar is None:
            return Listed(full=False)
        token = calendar.sync_token
        return await self.listing.incremental_or_full(
            (lambda: self._pages(calendar, token)) if token is not None else None,
            lambda: self._pages(calendar, None),
        )

    async def _pages(self, calendar: UserCalendar, sync_token: str | None) -> Listed:
        seen: set[str] = set()

        async def fetch(page_token: str | None) -> Page[GoogleEvent]:
            return await self.google.page(
                calendar.owner,
                calendar.google_id,
                sync_token=sync_token,
                page_token=page_token,
                page_size=self.page_size,
            )

        async def apply(session: AsyncSession, event: GoogleEvent) -> None:
            seen.add(event.id)
            await apply_event(self.writer, session, calendar, event, actor_id=None)

        async def finish(session: AsyncSession, last: Page[GoogleEvent]) -> None:
            repository = CalendarRepository(session)
            if sync_token is None:
                await self._cancel_unlisted(session, calendar, seen)
            locked = await repository.calendar(calendar.id, for_update=True)
            if locked is not None:
                locked.sync_token = last.next_sync_token
                locked.synced_at = self.clock.now()

        return await self.listing.read(
            full=sync_token is None, fetch=fetch, apply=apply, finish=finish
        )

    async def _cancel_unlisted(
        self, session: AsyncSession, calendar: UserCalendar, seen: set[str]
    ) -> None:
        """After a full listing: what the mirror holds but Google no longer lists is gone."""
        for stored in await CalendarRepository(session).live_events(calendar.id):
            if stored.google_id in seen:
                continue
            gone: dict[str, Any] = {
                **stored.resource,
                "status": CANCELLED,
                "etag": f"{stored.etag}-unlisted",
            }
            await self.writer.apply(
                session, calendar, GoogleEvent.model_validate(gone), actor_id=None
            )


def calendar_sync(runtime: CalendarRuntime) -> SyncRun:
    """The kit's sync of one key: the calendar it names."""
    sync = CalendarSync(
        runtime.uow, runtime.google, runtime.clock, page_size=runtime.settings.sync_page_size
    )

    async def run(key: SyncKey) -> None:
        if key.resource is not None:
            await sync.sync(UUID(key.resource))

    return run


async def resync_user(
    runtime: CalendarRuntime, session: AsyncSession, org_id: str, user_id: str
) -> list[SyncKey]:
    """A full resync of the user's synced calendars."""
    return [sync_key(c) for c in await CalendarRepository(session).restart_syncs(org_id, user_id)]


async def key_of_channel(session: AsyncSession, channel: Channel) -> SyncKey | None:
    """What a push notification asks to sync: the calendar its channel watches."""
    calendar = await CalendarRepository(session).calendar_by_google_id(
        channel.org_id, channel.user_id, channel.resource
    )
    return sync_key(calendar) if calendar is not None else None
