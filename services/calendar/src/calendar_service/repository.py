"""Every query of the calendar service. Events and calendars are always looked up within their
owner's org and user: a row of another user is simply not found."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import Table, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from calendar_service.google import CANCELLED
from calendar_service.models import TABLES, MirroredEvent, UserCalendar, event_links
from pipedesk_common.events.timeline import Link
from pipedesk_common.ids import new_id
from pipedesk_common.mirror.links import RecordLinks

EVENT_LINKS = RecordLinks(event_links, "event_id")


@dataclass(frozen=True)
class EventFilters:
    calendar_ids: tuple[UUID, ...] = ()
    time_min: datetime | None = None
    time_max: datetime | None = None
    record: Link | None = None
    include_cancelled: bool = False


class CalendarRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- calendars ---------------------------------------------------------------------------

    async def ensure_calendar(
        self,
        org_id: str,
        user_id: str,
        google_id: str,
        *,
        summary: str | None,
        primary: bool,
        user_email: str | None,
        now: datetime,
    ) -> UserCalendar:
        table: Table = UserCalendar.__table__  # type: ignore[attr-defined]
        statement = insert(table).values(
            id=new_id(),
            org_id=org_id,
            user_id=user_id,
            google_id=google_id,
            summary=summary,
            primary=primary,
            user_email=user_email,
            created_at=now,
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["org_id", "user_id", "google_id"],
                set_={
                    name: statement.excluded[name] for name in ("summary", "primary", "user_email")
                },
            )
        )
        calendar = await self.calendar_by_google_id(org_id, user_id, google_id)
        assert calendar is not None
        return calendar

    async def calendar_by_google_id(
        self, org_id: str, user_id: str, google_id: str
    ) -> UserCalendar | None:
        return (
            await self.session.scalars(
                select(UserCalendar)
                .where(
                    col(UserCalendar.org_id) == org_id,
                    col(UserCalendar.user_id) == user_id,
                    col(UserCalendar.google_id) == google_id,
                )
                .execution_options(populate_existing=True)
            )
        ).one_or_none()

    async def primary_calendar(self, org_id: str, user_id: str) -> UserCalendar | None:
        return (
            await self.session.scalars(
                select(UserCalendar).where(
                    col(UserCalendar.org_id) == org_id,
                    col(UserCalendar.user_id) == user_id,
                    col(UserCalendar.primary).is_(True),
                )
            )
        ).first()

    async def calendars_of(self, org_id: str, user_id: str) -> list[UserCalendar]:
        return list(
            (
                await self.session.scalars(
                    select(UserCalendar)
                    .where(col(UserCalendar.org_id) == org_id, col(UserCalendar.user_id) == user_id)
                    .order_by(col(UserCalendar.primary).desc(), col(UserCalendar.google_id))
                )
            ).all()
        )

    async def calendar(self, calendar_id: UUID, *, for_update: bool = False) -> UserCalendar | None:
        query = select(UserCalendar).where(col(UserCalendar.id) == calendar_id)
        if for_update:
            query = query.with_for_update()
        return (
            await self.session.scalars(query.execution_options(populate_existing=True))
        ).one_or_none()

    async def watched_calendars(self) -> list[UserCalendar]:
        """Calendars with a live push channel, for reconciliation."""
        channels = TABLES.channels
        assert channels is not None
        watched = (
            select(channels.c.id)
            .where(
                channels.c.org_id == col(UserCalendar.org_id),
                channels.c.user_id == col(UserCalendar.user_id),
                channels.c.resource == col(UserCalendar.google_id),
                channels.c.stopped_at.is_(None),
            )
            .exists()
        )
        return list((await self.session.scalars(select(UserCalendar).where(watched))).all())

    async def restart_syncs(self, org_id: str, user_id: str) -> list[UserCalendar]:
        """The user's synced calendars, their sync tokens dropped: each next sync is a full one."""
        query = (
            update(UserCalendar)
            .where(
                col(UserCalendar.org_id) == org_id,
                col(UserCalendar.user_id) == user_id,
                col(UserCalendar.synced_at).is_not(None),
            )
            .values(sync_token=None)
            .returning(UserCalendar)
        )
        return list((await self.session.scalars(query)).all())

    # --- events ------------------------------------------------------------------------------

    async def event(
        self, org_id: str, user_id: str, event_id: UUID, *, for_update: bool = False
    ) -> MirroredEvent | None:
        query = select(MirroredEvent).where(
            col(MirroredEvent.id) == event_id,
            col(MirroredEvent.org_id) == org_id,
            col(MirroredEvent.user_id) == user_id,
        )
        if for_update:
            query = query.with_for_update()
        return (
            await self.session.scalars(query.execution_options(populate_existing=True))
        ).one_or_none()

    async def live_events(self, calendar_id: UUID) -> list[MirroredEvent]:
        """The calendar's mirrored events that are not cancelled."""
        return list(
            (
                await self.session.scalars(
                    select(MirroredEvent).where(
                        col(MirroredEvent.calendar_id) == calendar_id,
                        col(MirroredEvent.status) != CANCELLED,
                    )
                )
            ).all()
        )

    async def list_events(
        self,
        org_id: str,
        user_id: str,
        filters: EventFilters,
        *,
        after: tuple[datetime, UUID] | None,
        limit: int,
    ) -> list[MirroredEvent]:
        start = col(MirroredEvent.start_at)
        query = select(MirroredEvent).where(
            col(MirroredEvent.org_id) == org_id, col(MirroredEvent.user_id) == user_id
        )
        if filters.calendar_ids:
            query = query.where(col(MirroredEvent.calendar_id).in_(filters.calendar_ids))
        if not filters.include_cancelled:
            query = query.where(col(MirroredEvent.status) != CANCELLED)
        if filters.time_min is not None:
            # A series (its first occurrence's times mirrored) may have occurrences after it.
            query = query.where(
                or_(
                    col(MirroredEvent.end_at) > filters.time_min,
                    col(MirroredEvent.resource).op("?")("recurrence"),
                )
            )
        if filters.time_max is not None:
            query = query.where(col(MirroredEvent.start_at) < filters.time_max)
        if filters.record is not None:
            query = query.where(
                EVENT_LINKS.linked_to(col(MirroredEvent.id), org_id, filters.record)
            )
        if after is not None:
            query = query.where(tuple_(start, col(MirroredEvent.id)) > tuple_(*after))
        query = query.order_by(start, col(MirroredEvent.id)).limit(limit)
        return list((await self.session.scalars(query)).all())
