"""Every query of the calendar service. Events and calendars are always looked up within their
owner's org and user: a row of another user is simply not found."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from calendar_service.models import EventLink, MirroredEvent, UserCalendar, channels
from pipedesk_common.ids import new_id


@dataclass(frozen=True)
class EventFilters:
    calendar_ids: tuple[UUID, ...] = ()
    time_min: datetime | None = None
    time_max: datetime | None = None
    record: tuple[str, str] | None = None
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
        table = UserCalendar.__table__  # type: ignore[attr-defined]
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

    async def watched_calendars(self) -> list[UUID]:
        """Calendars with a live push channel, for reconciliation."""
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
        return list((await self.session.scalars(select(col(UserCalendar.id)).where(watched))).all())

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

    async def event_by_google_id(
        self, calendar_id: UUID, google_id: str, *, for_update: bool = False
    ) -> MirroredEvent | None:
        query = select(MirroredEvent).where(
            col(MirroredEvent.calendar_id) == calendar_id,
            col(MirroredEvent.google_id) == google_id,
        )
        if for_update:
            query = query.with_for_update()
        return (
            await self.session.scalars(query.execution_options(populate_existing=True))
        ).one_or_none()

    async def insert_event(self, values: dict[str, Any]) -> UUID | None:
        """Insert a mirrored event unless a concurrent writer did; its id, or None."""
        table = MirroredEvent.__table__  # type: ignore[attr-defined]
        inserted: UUID | None = await self.session.scalar(
            insert(table)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["calendar_id", "google_id"])
            .returning(table.c.id)
        )
        return inserted

    async def live_google_ids(self, calendar_id: UUID) -> list[str]:
        return list(
            (
                await self.session.scalars(
                    select(col(MirroredEvent.google_id)).where(
                        col(MirroredEvent.calendar_id) == calendar_id,
                        col(MirroredEvent.status) != "cancelled",
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
            query = query.where(col(MirroredEvent.status) != "cancelled")
        if filters.time_min is not None:
            query = query.where(col(MirroredEvent.end_at) > filters.time_min)
        if filters.time_max is not None:
            query = query.where(col(MirroredEvent.start_at) < filters.time_max)
        if filters.record is not None:
            record_type, record_id = filters.record
            query = query.where(
                select(EventLink)
                .where(
                    col(EventLink.event_id) == col(MirroredEvent.id),
                    col(EventLink.org_id) == org_id,
                    col(EventLink.record_type) == record_type,
                    col(EventLink.record_id) == record_id,
                )
                .exists()
            )
        if after is not None:
            query = query.where(tuple_(start, col(MirroredEvent.id)) > tuple_(*after))
        query = query.order_by(start, col(MirroredEvent.id)).limit(limit)
        return list((await self.session.scalars(query)).all())

    # --- links -------------------------------------------------------------------------------

    async def links_of(self, event_ids: Sequence[UUID]) -> dict[UUID, list[tuple[str, str]]]:
        if not event_ids:
            return {}
        rows = await self.session.execute(
            select(col(EventLink.event_id), col(EventLink.record_type), col(EventLink.record_id))
            .where(col(EventLink.event_id).in_(event_ids))
            .order_by(col(EventLink.record_type), col(EventLink.record_id))
        )
        found: dict[UUID, list[tuple[str, str]]] = {event_id: [] for event_id in event_ids}
        for event_id, record_type, record_id in rows:
            found[event_id].append((record_type, record_id))
        return found

    async def replace_links(self, event: MirroredEvent, links: Iterable[tuple[str, str]]) -> None:
        table = EventLink.__table__  # type: ignore[attr-defined]
        await self.session.execute(delete(table).where(table.c.event_id == event.id))
        rows = [
            {"event_id": event.id, "record_type": kind, "record_id": record, "org_id": event.org_id}
            for kind, record in sorted(set(links))
        ]
        if rows:
            await self.session.execute(insert(table).values(rows))
