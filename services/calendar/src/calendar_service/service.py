"""Calendar domain logic.

Access (role, then every linked CRM record through the access replica) is decided before any
Google call. No transaction is held open across a Google call: each step is a unit of work of its
own (``uow.read()``, ``uow.write()``), and what Google answered is applied to the mirror — and
its event written to the outbox — in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncSession

from calendar_service.google import CANCELLED, CalendarListEntry, GoogleEvent, NotOrganizer
from calendar_service.mirror import apply_event, event_writer, public, stored_event
from calendar_service.models import MirroredEvent, UserCalendar
from calendar_service.repository import EVENT_LINKS, CalendarRepository, EventFilters
from calendar_service.schemas import (
    SEND_UPDATES,
    BusyPeriod,
    EventCreate,
    EventPublic,
    EventUpdate,
    FreeBusyPublic,
    GoogleTime,
    Notify,
    RsvpRequest,
    When,
    check_recurrence,
    check_span,
    normalize_attendees,
    parse_occurrence,
    parse_when,
)
from calendar_service.sync import CalendarRuntime, sync_key
from pipedesk_common.auth import Principal
from pipedesk_common.errors import Conflict, NotFound, invalid
from pipedesk_common.events.timeline import Link
from pipedesk_common.google.push import Channel
from pipedesk_common.idempotency import fingerprint, owned_scope, remote_id
from pipedesk_common.mirror.links import check_links, hidden_links, replaced_links
from pipedesk_common.mirror.runtime import google_user, require_role
from pipedesk_common.rbac import Action

MAX_FREEBUSY_SPAN = timedelta(days=62)
# What an update may change on an invitation: what PipeDesk alone keeps, and whom Google tells.
PIPEDESK_ONLY = frozenset({"links", "notify"})
NOUN = "calendar events"


class CalendarService:
    def __init__(self, runtime: CalendarRuntime) -> None:
        self.runtime = runtime
        self.uow = runtime.uow
        self.google = runtime.google
        self.clock = runtime.clock
        self.writer = event_writer(runtime.clock)

    # --- access ------------------------------------------------------------------------------

    async def _calendar(self, principal: Principal, calendar_id: str) -> UserCalendar:
        """The caller's calendar (``primary`` or an id from their calendar list), mirrored."""
        async with self.uow.read() as session:
            repository = CalendarRepository(session)
            known = (
                await repository.primary_calendar(principal.org_id, principal.sub)
                if calendar_id == "primary"
                else await repository.calendar_by_google_id(
                    principal.org_id, principal.sub, calendar_id
                )
            )
        if known is not None:
            return known
        entry = await self.google.calendar(google_user(principal), calendar_id)
        async with self.uow.write() as session:
            return await self._mirror_calendar(session, principal, entry)

    async def _mirror_calendar(
        self, session: AsyncSession, principal: Principal, entry: CalendarListEntry
    ) -> UserCalendar:
        return await CalendarRepository(session).ensure_calendar(
            principal.org_id,
            principal.sub,
            entry.id,
            summary=entry.summary,
            primary=entry.primary,
            user_email=principal.email,
            now=self.clock.now(),
        )

    async def _own_event(
        self, session: AsyncSession, principal: Principal, event_id: UUID
    ) -> tuple[MirroredEvent, UserCalendar]:
        repository = CalendarRepository(session)
        event = await repository.event(principal.org_id, principal.sub, event_id)
        if event is None:
            raise NotFound("no such event")
        calendar = await repository.calendar(event.calendar_id)
        assert calendar is not None
        return event, calendar

    # --- events ------------------------------------------------------------------------------

    async def create(
        self, principal: Principal, data: EventCreate, idempotency_key: str | None
    ) -> tuple[EventPublic, bool]:
        """The event, and whether this request created it (False: a replayed request)."""
        require_role(principal, Action.CREATE, NOUN)
        start, end = data.times()
        if start is None:
            raise invalid("start", "required", "missing")
        if end is None:
            raise invalid("end", "required", "missing")
        check_span(start, end)
        if data.recurrence is not None:
            check_recurrence(data.recurrence, start)
        scope = owned_scope("calendar.events.create", principal.org_id, principal.sub)
        digest = fingerprint(data.model_dump(mode="json"))
        async with self.uow.write() as session:
            if idempotency_key is not None:
                answered = await self.runtime.idempotency.replay(
                    session, scope, idempotency_key, digest
                )
                if answered is not None:
                    return await self.get(principal, UUID(answered.body["id"])), False
            links = await check_links(
                self.runtime.replica, session, principal, data.links or [], noun="meetings"
            )
        calendar = await self._calendar(principal, data.calendar_id)
        google_id = remote_id(scope, idempotency_key) if idempotency_key else uuid4().hex
        body = self._google_body(data, start=start.google(), end=end.google())
        body["id"] = google_id
        if data.conference:
            body["conferenceData"] = {
                "createRequest": {
                    "requestId": google_id,
                    "conferenceSolutionKey": {"type": "hangoutsMeet"},
                }
            }
        resource, _created = await self.google.insert(
            google_user(principal),
            calendar.google_id,
            body,
            send_updates=SEND_UPDATES[data.notify],
        )
        async with self.uow.write() as session:
            event = await apply_event(
                self.writer, session, calendar, resource, actor_id=principal.sub, links=links
            )
            if event is None:
                raise NotFound("the event was cancelled before it could be recorded")
            current = (await EVENT_LINKS.of(session, [event.id]))[event.id]
            answer = public(
                calendar, event, current, await self._hidden(session, principal, current)
            )
            if idempotency_key is not None:
                await self.runtime.idempotency.remember(
                    session,
                    scope,
                    idempotency_key,
                    digest,
                    status=201,
                    body={"id": str(event.id)},
                )
        return answer, True

    @staticmethod
    def _google_body(
        data: EventCreate | EventUpdate, *, start: dict[str, str] | None, end: dict[str, str] | None
    ) -> dict[str, Any]:
        sent = data.model_fields_set
        body: dict[str, Any] = {}
        for name in ("summary", "description", "location", "visibility"):
            if name in sent:
                body[name] = getattr(data, name)
        if data.recurrence is not None:
            body["recurrence"] = data.recurrence
        if start is not None:
            body["start"] = start
        if end is not None:
            body["end"] = end
        if "attendees" in sent:
            body["attendees"] = normalize_attendees(data.attendees or [])
        return body

    async def _hidden(
        self, session: AsyncSession, principal: Principal, links: Sequence[Link]
    ) -> list[Link]:
        return await hidden_links(self.runtime.replica, session, principal, links)

    async def get(self, principal: Principal, event_id: UUID) -> EventPublic:
        async with self.uow.read() as session:
            event, calendar = await self._own_event(session, principal, event_id)
            links = (await EVENT_LINKS.of(session, [event.id]))[event.id]
            return public(calendar, event, links, await self._hidden(session, principal, links))

    async def list_events(
        self,
        principal: Principal,
        filters: EventFilters,
        *,
        calendar_id: str | None,
        after: tuple[datetime, UUID] | None,
        limit: int,
    ) -> list[EventPublic]:
        async with self.uow.write() as session:
            repository = CalendarRepository(session)
            if filters.record is not None:
                record = filters.record
                replica = self.runtime.replica
                if not await replica.can(session, principal, Action.READ, record.type, record.id):
                    raise NotFound(f"no such {record.type}")
            calendars = {
                calendar.id: calendar
                for calendar in await repository.calendars_of(principal.org_id, principal.sub)
            }
            if calendar_id is not None:
                chosen = [
                    c.id
                    for c in calendars.values()
                    if c.google_id == calendar_id or (calendar_id == "primary" and c.primary)
                ]
                if not chosen:
                    return []
                filters = replace(filters, calendar_ids=tuple(chosen))
            events = await repository.list_events(
                principal.org_id, principal.sub, filters, after=after, limit=limit
            )
            links = await EVENT_LINKS.of(session, [event.id for event in events])
            return [
                public(
                    calendars[event.calendar_id],
                    event,
                    links[event.id],
                    await self._hidden(session, principal, links[event.id]),
                )
                for event in events
            ]

    async def _occurrence(
        self, principal: Principal, calendar: UserCalendar, series: MirroredEvent, occurrence: str
    ) -> GoogleEvent:
        """The occurrence of ``series`` originally due at ``occurrence``, as Google holds it."""
        if not stored_event(series).recurrence:
            raise invalid("occurrence", "this event is not a series", location="query")
        when = parse_occurrence(occurrence)
        original = when.day.isoformat() if when.day is not None else when.instant().isoformat()
        found = await self.google.instance(
            google_user(principal), calendar.google_id, series.google_id, original
        )
        if found is None:
            raise NotFound(f"this series has no occurrence at {occurrence}")
        return found

    async def update(
        self,
        principal: Principal,
        event_id: UUID,
        data: EventUpdate,
        occurrence: str | None = None,
    ) -> EventPublic:
        """Change an event; with ``occurrence``, only that occurrence of the series (which
        becomes an exception of its own, mirrored as an event of its own)."""
        require_role(principal, Action.UPDATE, NOUN)
        async with self.uow.write() as session:
            event, calendar = await self._own_event(session, principal, event_id)
            if event.status == CANCELLED:
                raise NotFound("this event is cancelled")
            links = (
                await replaced_links(
                    self.runtime.replica,
                    session,
                    principal,
                    (await EVENT_LINKS.of(session, [event.id]))[event.id],
                    data.links,
                    noun="meetings",
                )
                if data.links is not None
                else None
            )
        shared = data.model_fields_set - PIPEDESK_ONLY
        if shared and not stored_event(event).organized_by_owner:
            raise _not_organizer(event, shared)
        start, end = data.times()
        _check_series_change(event, data, start, occurrence)
        target = (
            stored_event(event)
            if occurrence is None
            else await self._occurrence(principal, calendar, event, occurrence)
        )
        stored = target.raw
        if start is not None or end is not None:
            check_span(
                start or _stored_when(stored.get("start")),
                end or _stored_when(stored.get("end")),
            )
        body = self._google_body(
            data,
            start=start.google() if start else None,
            end=end.google() if end else None,
        )
        if start is not None and end is None:
            body["end"] = stored["end"]
        if end is not None and start is None:
            body["start"] = stored["start"]
        if data.timezone is not None:
            for side in ("start", "end"):
                value = dict(body.get(side) or stored.get(side) or {})
                if value.get("dateTime"):
                    value["timeZone"] = data.timezone
                    body[side] = value
        # A Meet Google is still creating is not asked for again; a failed one is.
        if data.conference is True and stored_event(event).conference_status not in (
            "success",
            "pending",
        ):
            body["conferenceData"] = {
                "createRequest": {
                    "requestId": uuid4().hex,
                    "conferenceSolutionKey": {"type": "hangoutsMeet"},
                }
            }
        elif data.conference is False:
            body["conferenceData"] = None
        resource = target
        if body:
            try:
                resource = await self.google.patch(
                    google_user(principal),
                    calendar.google_id,
                    target.id,
                    body,
                    send_updates=SEND_UPDATES[data.notify],
                )
            except NotOrganizer as refused:
                # The mirror had not seen yet that this is an invitation; Google had.
                raise _not_organizer(event, shared) from refused
        async with self.uow.write() as session:
            applied = await apply_event(
                self.writer, session, calendar, resource, actor_id=principal.sub, links=links
            )
            assert applied is not None
            current = (await EVENT_LINKS.of(session, [applied.id]))[applied.id]
            return public(
                calendar, applied, current, await self._hidden(session, principal, current)
            )

    async def rsvp(self, principal: Principal, event_id: UUID, data: RsvpRequest) -> EventPublic:
        """The caller's answer to an invitation, as Google takes it: their own entry among the
        attendees of their copy, the rest sent back unchanged."""
        require_role(principal, Action.UPDATE, NOUN)
        async with self.uow.read() as session:
            event, calendar = await self._own_event(session, principal, event_id)
        if event.status == CANCELLED:
            raise NotFound("this event is cancelled")
        resource = stored_event(event)
        if resource.organized_by_owner:
            raise Conflict("you organize this event: there is no invitation to answer")
        if resource.own_attendance() is None:
            raise Conflict("you are not among this event's guests")
        attendees = []
        for attendee in resource.raw.get("attendees", []):
            entry = {k: v for k, v in attendee.items() if k not in ("self", "organizer")}
            if attendee.get("self"):
                entry["responseStatus"] = data.response
                if data.comment is not None:
                    entry["comment"] = data.comment
            attendees.append(entry)
        answered = await self.google.patch(
            google_user(principal),
            calendar.google_id,
            event.google_id,
            {"attendees": attendees},
            send_updates="all",
        )
        async with self.uow.write() as session:
            applied = await self.writer.apply(session, calendar, answered, actor_id=principal.sub)
            assert applied is not None
            current = (await EVENT_LINKS.of(session, [applied.id]))[applied.id]
            return public(
                calendar, applied, current, await self._hidden(session, principal, current)
            )

    async def cancel(
        self,
        principal: Principal,
        event_id: UUID,
        notify: Notify = "all",
        occurrence: str | None = None,
    ) -> None:
        """Cancel an event (a series with all its occurrences); with ``occurrence``, only that
        occurrence of the series (mirrored as a cancelled exception)."""
        require_role(principal, Action.DELETE, NOUN)
        if occurrence is not None:
            parse_occurrence(occurrence)
        async with self.uow.read() as session:
            event, calendar = await self._own_event(session, principal, event_id)
        if event.status == CANCELLED:
            if occurrence is None:
                return
            raise NotFound("this series is cancelled")
        google_id = event.google_id
        if occurrence is not None:
            google_id = (await self._occurrence(principal, calendar, event, occurrence)).id
        user = google_user(principal)
        await self.google.cancel(
            user, calendar.google_id, google_id, send_updates=SEND_UPDATES[notify]
        )
        resource = await self.google.get(user, calendar.google_id, google_id)
        async with self.uow.write() as session:
            await apply_event(self.writer, session, calendar, resource, actor_id=principal.sub)

    # --- calendars, free/busy ----------------------------------------------------------------

    async def calendars(self, principal: Principal) -> list[UserCalendar]:
        entries = await self.google.calendars(google_user(principal))
        async with self.uow.write() as session:
            return [await self._mirror_calendar(session, principal, entry) for entry in entries]

    async def free_busy(
        self,
        principal: Principal,
        time_min: datetime,
        time_max: datetime,
        calendar_ids: Sequence[str],
    ) -> FreeBusyPublic:
        if time_max <= time_min:
            raise invalid("time_max", "must be after time_min", location="query")
        if time_max - time_min > MAX_FREEBUSY_SPAN:
            raise invalid("time_max", "at most 62 days after time_min", location="query")
        wanted = list(dict.fromkeys(calendar_ids)) or ["primary"]
        await self._own_calendar_ids(principal, wanted)
        answer = await self.google.free_busy(google_user(principal), time_min, time_max, wanted)
        calendars: dict[str, list[BusyPeriod]] = {}
        for calendar_id in wanted:
            found = answer.calendars.get(calendar_id)
            if found is None or found.errors:
                raise NotFound(f"no such calendar: {calendar_id}")
            calendars[calendar_id] = [
                BusyPeriod(start=period.start, end=period.end) for period in found.busy
            ]
        return FreeBusyPublic(time_min=time_min, time_max=time_max, calendars=calendars)

    async def _own_calendar_ids(self, principal: Principal, wanted: Sequence[str]) -> None:
        """404 unless every id is ``primary`` or one of the caller's calendars (their calendar
        list is read again from Google before refusing)."""
        async with self.uow.read() as session:
            known = {
                calendar.google_id
                for calendar in await CalendarRepository(session).calendars_of(
                    principal.org_id, principal.sub
                )
            }
        unknown = {calendar_id for calendar_id in wanted if calendar_id != "primary"} - known
        if unknown:
            known = {calendar.google_id for calendar in await self.calendars(principal)}
        if unknown - known:
            raise NotFound(f"no such calendar: {sorted(unknown - known)[0]}")

    # --- push --------------------------------------------------------------------------------

    async def watch(
        self, principal: Principal, calendar_id: str | None
    ) -> list[tuple[UserCalendar, Channel]]:
        """A live channel per calendar (all of the user's by default), and a sync of each."""
        require_role(principal, Action.CREATE, NOUN)
        if calendar_id is None:
            targets = await self.calendars(principal)
        else:
            targets = [await self._calendar(principal, calendar_id)]
        opened = []
        for calendar in targets:
            channel = await self.runtime.push().ensure(calendar.owner, calendar.google_id)
            opened.append((calendar, channel))
            async with self.uow.write() as session:
                await self.runtime.work.request(session, sync_key(calendar))
        return opened

    async def unwatch(self, principal: Principal) -> int:
        return await self.runtime.push().stop_all(principal.org_id, principal.sub)


def _not_organizer(event: MirroredEvent, fields: set[str]) -> NotOrganizer:
    organizer = stored_event(event).organizer
    who = (organizer.email if organizer and not organizer.is_self else None) or "another user"
    return NotOrganizer(
        f"only the organizer ({who}) may change {', '.join(sorted(fields))}; answer the "
        f"invitation with POST /api/calendar/events/{event.id}/rsvp"
    )


def _check_series_change(
    event: MirroredEvent, data: EventUpdate, start: When | None, occurrence: str | None
) -> None:
    """422 for a change Google would refuse: a recurrence on an occurrence, or a rule that
    does not read from the series' start; a change of one occurrence changes something."""
    if occurrence is not None and not data.model_fields_set - PIPEDESK_ONLY:
        raise invalid(
            "occurrence", "change at least one field of the occurrence", "missing", location="query"
        )
    if data.recurrence is None:
        return
    if stored_event(event).recurring_event_id or occurrence is not None:
        raise invalid("recurrence", "an occurrence of a series has no recurrence of its own")
    check_recurrence(data.recurrence, start or _stored_when(event.resource.get("start")))


def _stored_when(value: dict[str, Any] | None) -> When:
    return parse_when(GoogleTime.model_validate(value or {}), "start", None)
