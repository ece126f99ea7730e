"""The local mirror: applying what Google says about an event, and publishing what changed.

One function, ``apply_event``, for every source — our own API's answers and sync pages alike — so
an event is announced once however many paths see it: the writer that inserts the row publishes
``created``; a later version (a new ETag, not older than what is stored) publishes ``updated`` or
``cancelled``; the same version seen again publishes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from calendar_service.models import MirroredEvent, UserCalendar, outbox
from calendar_service.repository import CalendarRepository
from calendar_service.schemas import (
    AttendeePublic,
    EventPublic,
    EventTimePublic,
    LinkPublic,
)
from pipedesk_common.clock import Clock
from pipedesk_common.events import new_event
from pipedesk_common.events.calendar import (
    CalendarEventCancelled,
    CalendarEventCreated,
    CalendarEventSnapshot,
    CalendarEventUpdated,
)
from pipedesk_common.events.timeline import (
    ItemKind,
    Link,
    RecordType,
    TimelineProjection,
    TimelineSource,
    Visibility,
    identity_of,
)
from pipedesk_common.ids import new_id
from pipedesk_common.outbox import add_event

CANCELLED = "cancelled"
PRIVATE_VISIBILITIES = frozenset({"private", "confidential"})
MAX_SUMMARY = 4000

LinkPair = tuple[str, str]


def _instant(value: dict[str, Any] | None) -> datetime | None:
    if not value:
        return None
    if value.get("date"):
        return datetime.combine(date.fromisoformat(value["date"]), time(), tzinfo=UTC)
    if value.get("dateTime"):
        moment = datetime.fromisoformat(str(value["dateTime"]).replace("Z", "+00:00"))
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def _google_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _columns(resource: dict[str, Any]) -> dict[str, Any]:
    start = resource.get("start") or {}
    return {
        "status": resource.get("status") or "confirmed",
        "summary": resource.get("summary"),
        "start_at": _instant(start),
        "end_at": _instant(resource.get("end")),
        "all_day": bool(start.get("date")),
        "etag": resource.get("etag"),
        "google_updated": _google_time(resource.get("updated")),
        "resource": resource,
    }


def _is_newer(stored: MirroredEvent, resource: dict[str, Any]) -> bool:
    if resource.get("etag") is not None and resource.get("etag") == stored.etag:
        return False
    incoming = _google_time(resource.get("updated"))
    return not (incoming and stored.google_updated and incoming < stored.google_updated)


async def apply_event(
    session: AsyncSession,
    clock: Clock,
    calendar: UserCalendar,
    resource: dict[str, Any],
    *,
    actor_id: str | None,
    links: Sequence[LinkPair] | None = None,
) -> MirroredEvent | None:
    """Bring the mirror up to ``resource`` (and ``links``, when given); publish the change."""
    repository = CalendarRepository(session)
    google_id = str(resource["id"])
    stored = await repository.event_by_google_id(calendar.id, google_id, for_update=True)
    if stored is None:
        if resource.get("status") == CANCELLED:
            return None  # never mirrored, already gone: nothing to announce
        stored, inserted = await _insert(session, clock, calendar, resource)
        if stored is None or inserted:
            if stored is not None:
                if links:
                    await repository.replace_links(stored, links)
                await publish(
                    session,
                    calendar,
                    stored,
                    sorted(set(links or ())),
                    CalendarEventCreated,
                    actor_id,
                )
            return stored
    return await _update(session, clock, calendar, stored, resource, actor_id=actor_id, links=links)


async def _insert(
    session: AsyncSession, clock: Clock, calendar: UserCalendar, resource: dict[str, Any]
) -> tuple[MirroredEvent | None, bool]:
    """The new row (and True), or the row a concurrent writer inserted first (and False)."""
    repository = CalendarRepository(session)
    columns = _columns(resource)
    if columns["start_at"] is None or columns["end_at"] is None:
        return None, False
    now = clock.now()
    inserted = await repository.insert_event(
        {
            "id": new_id(),
            "org_id": calendar.org_id,
            "user_id": calendar.user_id,
            "calendar_id": calendar.id,
            "google_id": str(resource["id"]),
            "version": 1,
            "created_at": now,
            "updated_at": now,
            **columns,
        }
    )
    stored = await repository.event_by_google_id(calendar.id, str(resource["id"]), for_update=True)
    return stored, inserted is not None


async def _update(
    session: AsyncSession,
    clock: Clock,
    calendar: UserCalendar,
    stored: MirroredEvent,
    resource: dict[str, Any],
    *,
    actor_id: str | None,
    links: Sequence[LinkPair] | None,
) -> MirroredEvent:
    repository = CalendarRepository(session)
    current_links = (await repository.links_of([stored.id]))[stored.id]
    wanted_links = sorted(set(links)) if links is not None else current_links
    newer = _is_newer(stored, resource)
    if not newer and wanted_links == current_links:
        return stored
    was_cancelled = stored.status == CANCELLED
    if newer:
        if resource.get("status") == CANCELLED:
            # Google may describe a cancelled event by little more than its id.
            resource = {**stored.resource, **resource}
        for name, value in _columns(resource).items():
            if value is not None or name in {"summary", "etag"}:
                setattr(stored, name, value)
    if wanted_links != current_links:
        await repository.replace_links(stored, wanted_links)
    stored.version += 1
    stored.updated_at = clock.now()
    await session.flush()
    if stored.status == CANCELLED and was_cancelled:
        return stored
    kind: type[CalendarEventSnapshot] = (
        CalendarEventCancelled if stored.status == CANCELLED else CalendarEventUpdated
    )
    await publish(session, calendar, stored, wanted_links, kind, actor_id)
    return stored


async def publish(
    session: AsyncSession,
    calendar: UserCalendar,
    event: MirroredEvent,
    links: Sequence[LinkPair],
    kind: type[CalendarEventSnapshot],
    actor_id: str | None,
) -> None:
    data = kind(**snapshot(calendar, event, links, actor_id))
    await add_event(
        session,
        outbox,
        new_event(data, org_id=event.org_id, actor_id=actor_id, time=event.updated_at),
    )


def _attendee_emails(resource: dict[str, Any]) -> list[str]:
    emails = {str(a["email"]).lower() for a in resource.get("attendees", []) if a.get("email")}
    return sorted(emails)


def snapshot(
    calendar: UserCalendar,
    event: MirroredEvent,
    links: Sequence[LinkPair],
    actor_id: str | None,
) -> dict[str, Any]:
    resource = event.resource
    start = resource.get("start") or {}
    organizer = (resource.get("organizer") or {}).get("email")
    attendees = _attendee_emails(resource)
    visibility = resource.get("visibility") or "default"
    record_links = [Link(type=RecordType(kind), id=record) for kind, record in links]
    participants = sorted({*attendees, *([organizer.lower()] if organizer else [])})
    description = resource.get("description")
    ical_uid = resource.get("iCalUID")
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
        "time_zone": start.get("timeZone"),
        "attendees": attendees,
        "organizer": organizer,
        "hangout_link": resource.get("hangoutLink"),
        "html_link": resource.get("htmlLink"),
        "visibility": visibility,
        "links": record_links,
        "timeline": TimelineProjection(
            kind=ItemKind.MEETING,
            occurred_at=event.start_at,
            title=(event.summary or "(no title)")[:500],
            summary=description[:MAX_SUMMARY] if description else None,
            participants=participants,
            links=record_links,
            source=TimelineSource(
                service="calendar",
                key=f"calendar:event:{event.id}",
                google_id=event.google_id,
                url=resource.get("hangoutLink") or resource.get("htmlLink"),
            ),
            # The organizer's and every attendee's copy share it: one meeting, one item.
            identity=identity_of(ical_uid) if ical_uid else None,
            status=event.status,
            actor_id=actor_id,
            visibility=Visibility(
                private=visibility in PRIVATE_VISIBILITIES, owner_id=event.user_id
            ),
            version=event.version,
        ),
    }


def public(calendar: UserCalendar, event: MirroredEvent, links: Sequence[LinkPair]) -> EventPublic:
    resource = event.resource
    start, end = resource.get("start") or {}, resource.get("end") or {}

    def when(value: dict[str, Any]) -> EventTimePublic | None:
        if not value:
            return None
        return EventTimePublic(
            date_time=_instant(value) if value.get("dateTime") else None,
            date=date.fromisoformat(value["date"]) if value.get("date") else None,
            time_zone=value.get("timeZone"),
        )

    return EventPublic(
        id=event.id,
        calendar_id=calendar.google_id,
        google_id=event.google_id,
        status=event.status,
        summary=event.summary,
        description=resource.get("description"),
        location=resource.get("location"),
        start=when(start),
        end=when(end),
        all_day=event.all_day,
        time_zone=start.get("timeZone"),
        attendees=[
            AttendeePublic(
                email=attendee["email"],
                display_name=attendee.get("displayName"),
                optional=bool(attendee.get("optional")),
                response_status=attendee.get("responseStatus"),
                organizer=bool(attendee.get("organizer")),
            )
            for attendee in resource.get("attendees", [])
        ],
        organizer=(resource.get("organizer") or {}).get("email"),
        hangout_link=resource.get("hangoutLink"),
        html_link=resource.get("htmlLink"),
        visibility=resource.get("visibility") or "default",
        links=[LinkPublic(type=kind, id=record) for kind, record in links],
        version=event.version,
        created_at=event.created_at,
        updated_at=event.updated_at,
    )
