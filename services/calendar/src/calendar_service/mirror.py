"""The calendar's mirror rules: what a Google event becomes in the mirror, and what is announced.

Every path goes through the kit's ``MirrorWriter`` (``event_writer``), so an event is announced
once however many paths see it: ``created`` when PipeDesk first sees it, ``updated`` for a later
version, ``cancelled`` when it is cancelled or deleted in Google (once). A series is one event;
an occurrence changed or cancelled on its own (an exception, with ``recurringEventId``) is an
event of its own, a cancelled one announced ``cancelled`` when first seen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from calendar_service.google import CANCELLED, EventTime, GoogleEvent
from calendar_service.models import TABLES, MirroredEvent, UserCalendar
from calendar_service.repository import EVENT_LINKS
from calendar_service.schemas import AttendeePublic, EventPublic, EventTimePublic
from pipedesk_common.clock import Clock
from pipedesk_common.events import VersionedData
from pipedesk_common.events.calendar import (
    CalendarEventCancelled,
    CalendarEventCreated,
    CalendarEventUpdated,
)
from pipedesk_common.events.timeline import (
    ItemKind,
    Link,
    Recurrence,
    TimelineProjection,
    TimelineSource,
    Visibility,
    identity_of,
)
from pipedesk_common.mirror.links import public_links
from pipedesk_common.mirror.writer import MirrorWriter

PRIVATE_VISIBILITIES: Final = frozenset({"private", "confidential"})
MAX_SUMMARY: Final = 4000
# Updates keep what Google left out; these may be cleared.
CLEARABLE: Final = frozenset({"summary", "etag"})

EventWriter = MirrorWriter[MirroredEvent, UserCalendar, GoogleEvent]


def stored_event(event: MirroredEvent) -> GoogleEvent:
    """The mirrored event as Google last described it."""
    return GoogleEvent.model_validate(event.resource)


class EventRules:
    def gone(self, resource: GoogleEvent) -> bool:
        # A cancelled occurrence of a series is kept: it says the occurrence will not happen.
        return resource.cancelled and resource.recurring_event_id is None

    def values(
        self, calendar: UserCalendar, resource: GoogleEvent, stored: MirroredEvent | None
    ) -> dict[str, Any] | None:
        if stored is not None and resource.cancelled:
            # Google may describe a cancelled event by little more than its id.
            resource = GoogleEvent.model_validate({**stored.resource, **resource.raw})
        # Google may describe a cancelled occurrence of a series by its original start alone.
        original = resource.original_start_time
        start = resource.start or original or EventTime()
        end = resource.end or original or EventTime()
        columns = {
            "org_id": calendar.org_id,
            "user_id": calendar.user_id,
            "calendar_id": calendar.id,
            "google_id": resource.id,
            "status": resource.status,
            "summary": resource.summary,
            "start_at": start.instant,
            "end_at": end.instant,
            "all_day": start.date is not None,
            "etag": resource.etag,
            "google_updated": resource.updated,
            "resource": resource.raw,
        }
        if stored is None:
            return columns if start.instant and end.instant else None
        return {k: v for k, v in columns.items() if v is not None or k in CLEARABLE}

    def kind(
        self, before: Mapping[str, Any] | None, row: MirroredEvent
    ) -> type[VersionedData] | None:
        if before is None:
            return CalendarEventCancelled if row.status == CANCELLED else CalendarEventCreated
        if row.status != CANCELLED:
            return CalendarEventUpdated
        return None if before["status"] == CANCELLED else CalendarEventCancelled

    def snapshot(
        self,
        calendar: UserCalendar,
        event: MirroredEvent,
        links: Sequence[Link],
        actor_id: str | None,
    ) -> dict[str, Any]:
        resource = stored_event(event)
        organizer = resource.organizer.email if resource.organizer else None
        attendees = resource.attendee_emails()
        participants = sorted({*attendees, *([organizer.lower()] if organizer else [])})
        description = resource.description
        original = resource.original_start_time
        return {
            "id": str(event.id),
            "version": event.version,
            "org_id": event.org_id,
            "owner_id": event.user_id,
            "calendar_id": calendar.google_id,
            "google_id": event.google_id,
            "status": event.status,
            "summary": event.summary,
            "start": event.start_at,
            "end": event.end_at,
            "all_day": event.all_day,
            "time_zone": resource.start.time_zone if resource.start else None,
            "attendees": attendees,
            "organizer": organizer,
            "hangout_link": resource.hangout_link,
            "conference_status": resource.conference_status,
            "html_link": resource.html_link,
            "visibility": resource.visibility,
            "recurrence": resource.recurrence,
            "recurring_event_id": resource.recurring_event_id,
            "original_start": original.instant if original else None,
            "links": list(links),
            "timeline": TimelineProjection(
                kind=ItemKind.MEETING,
                occurred_at=event.start_at,
                title=(event.summary or "(no title)")[:500],
                summary=description[:MAX_SUMMARY] if description else None,
                participants=participants,
                links=list(links),
                source=TimelineSource(
                    service="calendar",
                    key=f"calendar:event:{event.id}",
                    google_id=event.google_id,
                    url=resource.hangout_link or resource.html_link,
                ),
                # The organizer's and every attendee's copy share it: one meeting, one item.
                identity=meeting_identity(resource),
                recurrence=Recurrence(
                    rule=resource.recurrence,
                    time_zone=resource.start.time_zone if resource.start else None,
                    all_day=event.all_day,
                )
                if resource.recurrence
                else None,
                status=event.status,
                actor_id=actor_id,
                visibility=Visibility(
                    private=resource.visibility in PRIVATE_VISIBILITIES, owner_id=event.user_id
                ),
                version=event.version,
            ),
        }


def meeting_identity(resource: GoogleEvent) -> str | None:
    """The meeting a copy is of: its ``iCalUID``, which every copy shares. An occurrence of a
    series changed or cancelled on its own shares its series' ``iCalUID``, and is told apart by
    its original start, as iCalendar does (``RECURRENCE-ID``)."""
    if resource.ical_uid is None:
        return None
    original = resource.original_start_time
    if resource.recurring_event_id is None or original is None or original.instant is None:
        return identity_of(resource.ical_uid)
    recurrence_id = (
        original.date.strftime("%Y%m%d")
        if original.date is not None
        else original.instant.strftime("%Y%m%dT%H%M%SZ")
    )
    return identity_of(f"{resource.ical_uid};RECURRENCE-ID={recurrence_id}")


async def apply_event(
    writer: EventWriter,
    session: AsyncSession,
    calendar: UserCalendar,
    resource: GoogleEvent,
    *,
    actor_id: str | None,
    links: Sequence[Link] | None = None,
) -> MirroredEvent | None:
    """``writer.apply``; an exception of a series first seen takes the series' links (an
    occurrence of a meeting linked to a lead is a meeting of that lead too)."""
    if (
        links is None
        and resource.recurring_event_id is not None
        and await writer.find(session, calendar, resource.id) is None
    ):
        series = await writer.find(session, calendar, resource.recurring_event_id)
        if series is not None:
            links = (await EVENT_LINKS.of(session, [series.id]))[series.id]
    return await writer.apply(session, calendar, resource, actor_id=actor_id, links=links)


def event_writer(clock: Clock) -> EventWriter:
    return MirrorWriter(
        MirroredEvent,
        parent_key="calendar_id",
        links=EVENT_LINKS,
        outbox=TABLES.outbox,
        clock=clock,
        rules=EventRules(),
    )


def _when(value: EventTime | None) -> EventTimePublic | None:
    if value is None or (value.date is None and value.date_time is None):
        return None
    return EventTimePublic(
        date_time=value.instant if value.date_time is not None else None,
        date=value.date,
        time_zone=value.time_zone,
    )


def public(
    calendar: UserCalendar,
    event: MirroredEvent,
    links: Sequence[Link],
    hidden: Sequence[Link] = (),
) -> EventPublic:
    """The event as its reader sees it: links to records they may not read (``hidden``) without
    their ids."""
    resource = stored_event(event)
    attending = resource.own_attendance()
    return EventPublic(
        id=event.id,
        calendar_id=calendar.google_id,
        google_id=event.google_id,
        status=event.status,
        summary=event.summary,
        description=resource.description,
        location=resource.location,
        start=_when(resource.start),
        end=_when(resource.end),
        all_day=event.all_day,
        time_zone=resource.start.time_zone if resource.start else None,
        attendees=[
            AttendeePublic(
                email=attendee.email,
                display_name=attendee.display_name,
                optional=attendee.optional,
                response_status=attendee.response_status,
                organizer=attendee.organizer,
            )
            for attendee in resource.attendees
            if attendee.email
        ],
        organizer=resource.organizer.email if resource.organizer else None,
        is_organizer=resource.organized_by_owner,
        response_status=attending.response_status if attending else None,
        hangout_link=resource.hangout_link,
        conference_status=resource.conference_status,
        html_link=resource.html_link,
        visibility=resource.visibility,
        recurrence=resource.recurrence,
        recurring_event_id=resource.recurring_event_id,
        original_start=_when(resource.original_start_time),
        links=public_links(links, hidden),
        version=event.version,
        created_at=event.created_at,
        updated_at=event.updated_at,
    )
