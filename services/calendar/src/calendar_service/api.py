"""Calendar routes: parse, authorize (through the service), answer. (The push webhook, the
resync and jobs routes are the kit's, and so are the org settings' routes, in this service's
shapes.)"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import WithJsonSchema

from calendar_service.google import NotOrganizer
from calendar_service.models import OrgCalendarSettings
from calendar_service.repository import EventFilters
from calendar_service.schemas import (
    NOTIFY_DESCRIPTION,
    CalendarPublic,
    ChannelPublic,
    EventCreate,
    EventPublic,
    EventUpdate,
    FreeBusyPublic,
    Notify,
    OrgSettingsPublic,
    OrgSettingsWrite,
    RsvpRequest,
    WatchPublic,
    WatchRequest,
)
from calendar_service.service import CalendarService
from calendar_service.sync import CalendarRuntime
from pipedesk_common.app import ContextDep, PrincipalDep, provided
from pipedesk_common.errors import (
    Conflict,
    Forbidden,
    InvalidCursor,
    InvalidInput,
    NotFound,
    Unauthorized,
    problem_responses,
)
from pipedesk_common.idempotency import IdempotencyKeyReused
from pipedesk_common.mirror.links import RecordFilterDep
from pipedesk_common.mirror.routes import (
    GOOGLE_PROBLEMS,
    IdempotencyKeyDep,
    answer_created,
    org_settings_routes,
)
from pipedesk_common.mirror.runtime import MirrorRuntime
from pipedesk_common.moments import Rfc3339
from pipedesk_common.pagination import Page, PageCursor, PageLimit

router = APIRouter(prefix="/api/calendar", tags=["calendar"])

MAX_PAGE = 100


def start_key(event: EventPublic) -> datetime:
    """The list's sort key (the start as stored: all-day events at midnight UTC)."""
    assert event.start is not None
    if event.start.date_time is not None:
        return event.start.date_time
    assert event.start.date is not None
    return datetime.combine(event.start.date, time(), tzinfo=UTC)


RuntimeDep = Annotated[CalendarRuntime, Depends(provided(MirrorRuntime))]


async def calendar_service(runtime: RuntimeDep) -> CalendarService:
    return CalendarService(runtime)


ServiceDep = Annotated[CalendarService, Depends(calendar_service)]
# What ``parse_occurrence`` takes, as OpenAPI says it: a date, or an RFC 3339 date-time.
Occurrence = Annotated[
    str,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date"},
                {"type": "string", "format": "date-time"},
            ]
        }
    ),
]
OccurrenceQuery = Annotated[
    Occurrence | None,
    Query(
        max_length=40,
        description="Only this occurrence of a series, by its original start (an RFC 3339 "
        "date-time with offset, or a date for an all-day series); it becomes an event of its "
        "own (`recurring_event_id`, `original_start`)",
    ),
]


@router.post(
    "/events",
    status_code=status.HTTP_201_CREATED,
    summary="Create an event in one of the caller's calendars",
    description=(
        "Accepts aliases (`summary`|`title`, `description`|`notes`, "
        "`start`|`start_time`|`startTime`, `end`|`end_time`|`endTime`, `timezone`|`time_zone`); "
        "two names of one field in one payload answer 422. With `Idempotency-Key`, a retried "
        "request answers the event the first one created (`200`), never a second event."
    ),
    responses=problem_responses(
        Unauthorized, Forbidden, NotFound, InvalidInput, IdempotencyKeyReused, *GOOGLE_PROBLEMS
    ),
)
async def create_event(
    data: EventCreate,
    principal: PrincipalDep,
    service: ServiceDep,
    response: Response,
    idempotency_key: IdempotencyKeyDep,
) -> EventPublic:
    event, created = await service.create(principal, data, idempotency_key)
    answer_created(response, f"/api/calendar/events/{event.id}", created)
    return event


@router.get(
    "/events",
    summary="List the caller's events by time range, calendar or linked CRM record",
    description=(
        "Events from the mirror, by start: the caller's own, or those linked to a CRM "
        "record the caller may read. A page at a time: pass `next_cursor` back as "
        "`cursor` until it is null."
    ),
    responses=problem_responses(Unauthorized, NotFound, InvalidInput, InvalidCursor),
)
async def list_events(
    principal: PrincipalDep,
    service: ServiceDep,
    context: ContextDep,
    record: RecordFilterDep,
    time_min: Annotated[Rfc3339 | None, Query(description="Events ending after")] = None,
    time_max: Annotated[Rfc3339 | None, Query(description="Events starting before")] = None,
    calendar_id: Annotated[str | None, Query(max_length=500)] = None,
    include_cancelled: bool = False,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Page[EventPublic]:
    filters = EventFilters(
        time_min=time_min,
        time_max=time_max,
        record=record,
        include_cancelled=include_cancelled,
    )
    scope = f"calendar-events:{calendar_id}:{filters!r}"
    after = context.cursors.decode_keyset(cursor, scope=scope) if cursor else None
    events = await service.list_events(
        principal, filters, calendar_id=calendar_id, after=after, limit=limit + 1
    )
    return context.cursors.keyset_page(events, limit, moment=start_key, scope=scope)


@router.get(
    "/events/{event_id}",
    summary="Get one of the caller's events",
    description=(
        "An event of the caller's calendars (or linked to a record they may read), from the mirror."
    ),
    responses=problem_responses(Unauthorized, NotFound),
)
async def get_event(event_id: UUID, principal: PrincipalDep, service: ServiceDep) -> EventPublic:
    return await service.get(principal, event_id)


@router.patch(
    "/events/{event_id}",
    summary="Change an event (aliases as on create); `conference: true` adds a Meet link",
    description=(
        "Only the organizer may change what guests share; on an invitation, anything but "
        "`links` answers `403 not-organizer` (answer it with `…/rsvp`)."
    ),
    responses=problem_responses(
        Unauthorized, NotOrganizer, Forbidden, NotFound, InvalidInput, *GOOGLE_PROBLEMS
    ),
)
async def update_event(
    event_id: UUID,
    data: EventUpdate,
    principal: PrincipalDep,
    service: ServiceDep,
    occurrence: OccurrenceQuery = None,
) -> EventPublic:
    return await service.update(principal, event_id, data, occurrence)


@router.post(
    "/events/{event_id}/rsvp",
    summary="Answer an invitation: accepted, declined or tentative",
    description=(
        "The caller's own answer, on their copy of an event another user organizes; Google "
        "passes it to the organizer. `409` for an event the caller organizes or is not invited "
        "to."
    ),
    responses=problem_responses(
        Unauthorized, Forbidden, NotFound, Conflict, InvalidInput, *GOOGLE_PROBLEMS
    ),
)
async def answer_invitation(
    event_id: UUID, data: RsvpRequest, principal: PrincipalDep, service: ServiceDep
) -> EventPublic:
    return await service.rsvp(principal, event_id, data)


@router.delete(
    "/events/{event_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Cancel an event",
    description=(
        "Cancels the event in Google (attendees are told as `notify` says); the "
        "mirror keeps it as cancelled."
    ),
    responses=problem_responses(Unauthorized, Forbidden, NotFound, InvalidInput, *GOOGLE_PROBLEMS),
)
async def cancel_event(
    event_id: UUID,
    principal: PrincipalDep,
    service: ServiceDep,
    notify: Annotated[Notify, Query(description=NOTIFY_DESCRIPTION)] = "all",
    occurrence: OccurrenceQuery = None,
) -> None:
    await service.cancel(principal, event_id, notify, occurrence)


@router.get(
    "/calendars",
    summary="The caller's calendars (their Google calendar list)",
    responses=problem_responses(Unauthorized, InvalidInput, InvalidCursor, *GOOGLE_PROBLEMS),
)
async def list_calendars(
    principal: PrincipalDep,
    service: ServiceDep,
    context: ContextDep,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Page[CalendarPublic]:
    """Read from Google on every call (and mirrored): the primary calendar first, then the
    others by name, a page at a time."""
    calendars = [
        CalendarPublic(
            id=calendar.google_id,
            summary=calendar.summary,
            primary=calendar.primary,
            synced_at=calendar.synced_at,
        )
        for calendar in await service.calendars(principal)
    ]
    return context.cursors.listed_page(
        calendars,
        limit,
        cursor,
        key=lambda calendar: [
            "0" if calendar.primary else "1",
            calendar.summary or "",
            calendar.id,
        ],
        scope=f"calendars:{principal.org_id}:{principal.sub}",
    )


@router.get(
    "/freebusy",
    summary="The caller's busy periods, for scheduling",
    description=(
        "Google's free/busy for the caller's calendars between `time_min` and "
        "`time_max` (at most 62 days apart)."
    ),
    responses=problem_responses(Unauthorized, NotFound, InvalidInput, *GOOGLE_PROBLEMS),
)
async def free_busy(
    principal: PrincipalDep,
    service: ServiceDep,
    time_min: Rfc3339,
    time_max: Rfc3339,
    calendar_id: Annotated[
        list[str], Query(max_length=20, description="Default: the primary calendar")
    ] = [],  # noqa: B006
) -> FreeBusyPublic:
    return await service.free_busy(principal, time_min, time_max, calendar_id)


@router.post(
    "/watch",
    summary="Receive Google's push notifications for the caller's calendars",
    description="Opens (or keeps) a channel per calendar and syncs each calendar's mirror.",
    responses=problem_responses(Unauthorized, Forbidden, NotFound, *GOOGLE_PROBLEMS),
)
async def watch(
    principal: PrincipalDep, service: ServiceDep, data: WatchRequest | None = None
) -> WatchPublic:
    opened = await service.watch(principal, data.calendar_id if data else None)
    return WatchPublic(
        channels=[
            ChannelPublic(
                id=channel.id, calendar_id=calendar.google_id, expires_at=channel.expires_at
            )
            for calendar, channel in opened
        ]
    )


@router.delete(
    "/watch",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Stop every push channel of the caller",
    description=(
        "Stops the caller's Google push channels; the mirror is then refreshed only "
        "by the periodic reconcile."
    ),
    responses=problem_responses(Unauthorized),
)
async def unwatch(principal: PrincipalDep, service: ServiceDep) -> None:
    await service.unwatch(principal)


org_settings_routes(
    router,
    product="calendar",
    model=OrgCalendarSettings,
    public=OrgSettingsPublic,
    write=OrgSettingsWrite,
    read_description="How long the org keeps mirrored events, and what a disconnected "
    "calendar's events become.",
    write_summary="Set the org's calendar settings (admins): retention, the disconnect rule",
    write_description=(
        "Replaces the org's calendar settings. The `calendar.retention` job then removes the "
        "events that ended longer ago than `retention_days` from PipeDesk and every timeline; "
        "`on_disconnect` applies to the calendars of users who disconnect from then on."
    ),
)
