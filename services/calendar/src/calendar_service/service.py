"""Calendar domain logic.

Access (role, then every linked CRM record through the access replica) is decided before any
Google call. No transaction is held open across a Google call: each step opens a short unit of
work of its own (``self.work()``), and what Google answered is applied to the mirror — and its
event written to the outbox — in one transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from calendar_service.google import CalendarGoogle
from calendar_service.mirror import CANCELLED, LinkPair, apply_event, public
from calendar_service.models import UserCalendar, owner_of
from calendar_service.repository import CalendarRepository, EventFilters
from calendar_service.schemas import (
    BusyPeriod,
    EventCreate,
    EventPublic,
    EventUpdate,
    FreeBusyPublic,
    GoogleTime,
    LinkInput,
    When,
    check_span,
    invalid,
    normalize_attendees,
    parse_when,
)
from calendar_service.sync import sync_key
from pipedesk_common.access import AccessReplica
from pipedesk_common.auth import Principal
from pipedesk_common.background import BackgroundWork
from pipedesk_common.clock import Clock
from pipedesk_common.coalesce import Coalescer
from pipedesk_common.errors import Forbidden, NotFound
from pipedesk_common.google import GoogleUser
from pipedesk_common.google.push import PushChannels
from pipedesk_common.idempotency import IdempotencyKeys, fingerprint, remote_id
from pipedesk_common.rbac import ROLE_ACTIONS, Action

MAX_FREEBUSY_SPAN = timedelta(days=62)


def google_user(principal: Principal) -> GoogleUser:
    return GoogleUser(org_id=principal.org_id, user_id=principal.sub, email=principal.email)


def require_role(principal: Principal, action: Action) -> None:
    if action not in ROLE_ACTIONS[principal.role]:
        raise Forbidden(f"your role may not {action.value} calendar events")


@dataclass
class CalendarRuntime:
    """What the routes and the webhook share for the life of the process."""

    sessionmaker: async_sessionmaker[AsyncSession]
    clock: Clock
    google: CalendarGoogle
    replica: AccessReplica
    idempotency: IdempotencyKeys
    coalescer: Coalescer
    channels: PushChannels
    background: BackgroundWork
    sync_work: Callable[[str], Awaitable[None]]

    def schedule_sync(self, key: str) -> None:
        """Drain ``key`` in the background (the request was recorded before)."""
        self.background.spawn(self.coalescer.drain(key, self.sync_work), name=key)


class CalendarService:
    def __init__(self, runtime: CalendarRuntime) -> None:
        self.runtime = runtime
        self.google = runtime.google
        self.clock = runtime.clock

    def work(self) -> Any:
        return self.runtime.sessionmaker.begin()

    # --- access ------------------------------------------------------------------------------

    async def _check_links(
        self, session: AsyncSession, principal: Principal, links: Sequence[LinkInput]
    ) -> list[LinkPair]:
        """404 for a record the caller cannot see, 403 for one they may not change."""
        replica = self.runtime.replica
        pairs: list[LinkPair] = []
        for index, link in enumerate(links):
            record_id = str(link.id)
            if not await replica.can(session, principal, Action.READ, link.type, record_id):
                raise NotFound(
                    f"links.{index}: no such {link.type}",
                )
            if not await replica.can(session, principal, Action.UPDATE, link.type, record_id):
                raise Forbidden(f"links.{index}: you may not add meetings to this {link.type}")
            pairs.append((link.type, record_id))
        return sorted(set(pairs))

    async def _calendar(self, principal: Principal, calendar_id: str) -> UserCalendar:
        """The caller's calendar (``primary`` or an id from their calendar list), mirrored."""
        async with self.runtime.sessionmaker() as session:
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
        async with self.work() as session:
            return await CalendarRepository(session).ensure_calendar(
                principal.org_id,
                principal.sub,
                str(entry["id"]),
                summary=entry.get("summary"),
                primary=bool(entry.get("primary")),
                user_email=principal.email,
                now=self.clock.now(),
            )

    async def _own_event(self, session: AsyncSession, principal: Principal, event_id: UUID) -> Any:
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
        require_role(principal, Action.CREATE)
        start, end = data.times()
        if start is None:
            raise invalid("start", "required", "missing")
        if end is None:
            raise invalid("end", "required", "missing")
        check_span(start, end)
        scope = f"calendar.events.create:{principal.org_id}:{principal.sub}"
        digest = fingerprint(data.model_dump(mode="json"))
        async with self.work() as session:
            if idempotency_key is not None:
                answered = await self.runtime.idempotency.replay(
                    session, scope, idempotency_key, digest
                )
                if answered is not None:
                    return await self.get(principal, UUID(answered.body["id"])), False
            links = await self._check_links(session, principal, data.links or [])
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
            google_user(principal), calendar.google_id, body
        )
        async with self.work() as session:
            event = await apply_event(
                session, self.clock, calendar, resource, actor_id=principal.sub, links=links
            )
            if event is None:
                raise NotFound("the event was cancelled before it could be recorded")
            current = (await CalendarRepository(session).links_of([event.id]))[event.id]
            answer = public(calendar, event, current)
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
        if start is not None:
            body["start"] = start
        if end is not None:
            body["end"] = end
        if "attendees" in sent:
            body["attendees"] = normalize_attendees(data.attendees or [])
        return body

    async def get(self, principal: Principal, event_id: UUID) -> EventPublic:
        async with self.runtime.sessionmaker() as session:
            event, calendar = await self._own_event(session, principal, event_id)
            links = (await CalendarRepository(session).links_of([event.id]))[event.id]
        return public(calendar, event, links)

    async def list_events(
        self,
        principal: Principal,
        filters: EventFilters,
        *,
        calendar_id: str | None,
        after: tuple[datetime, UUID] | None,
        limit: int,
    ) -> list[EventPublic]:
        async with self.work() as session:
            repository = CalendarRepository(session)
            if filters.record is not None:
                record_type, record_id = filters.record
                replica = self.runtime.replica
                if not await replica.can(session, principal, Action.READ, record_type, record_id):
                    raise NotFound(f"no such {record_type}")
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
            links = await repository.links_of([event.id for event in events])
        return [public(calendars[event.calendar_id], event, links[event.id]) for event in events]

    async def update(self, principal: Principal, event_id: UUID, data: EventUpdate) -> EventPublic:
        require_role(principal, Action.UPDATE)
        async with self.work() as session:
            event, calendar = await self._own_event(session, principal, event_id)
            if event.status == CANCELLED:
                raise NotFound("this event is cancelled")
            links = (
                await self._check_links(session, principal, data.links)
                if data.links is not None
                else None
            )
        start, end = data.times()
        if start is not None or end is not None:
            stored = event.resource
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
            body["end"] = event.resource["end"]
        if end is not None and start is None:
            body["start"] = event.resource["start"]
        if data.timezone is not None:
            for side in ("start", "end"):
                value = dict(body.get(side) or event.resource.get(side) or {})
                if value.get("dateTime"):
                    value["timeZone"] = data.timezone
                    body[side] = value
        if data.conference is True and not event.resource.get("hangoutLink"):
            body["conferenceData"] = {
                "createRequest": {
                    "requestId": uuid4().hex,
                    "conferenceSolutionKey": {"type": "hangoutsMeet"},
                }
            }
        elif data.conference is False:
            body["conferenceData"] = None
        resource = event.resource
        if body:
            resource = await self.google.patch(
                google_user(principal), calendar.google_id, event.google_id, body
            )
        async with self.work() as session:
            applied = await apply_event(
                session, self.clock, calendar, resource, actor_id=principal.sub, links=links
            )
            assert applied is not None
            current = (await CalendarRepository(session).links_of([applied.id]))[applied.id]
            return public(calendar, applied, current)

    async def cancel(self, principal: Principal, event_id: UUID) -> None:
        require_role(principal, Action.DELETE)
        async with self.runtime.sessionmaker() as session:
            event, calendar = await self._own_event(session, principal, event_id)
        if event.status == CANCELLED:
            return
        user = google_user(principal)
        await self.google.cancel(user, calendar.google_id, event.google_id)
        resource = await self.google.get(user, calendar.google_id, event.google_id)
        async with self.work() as session:
            await apply_event(session, self.clock, calendar, resource, actor_id=principal.sub)

    # --- calendars, free/busy ----------------------------------------------------------------

    async def calendars(self, principal: Principal) -> list[UserCalendar]:
        entries = await self.google.calendars(google_user(principal))
        async with self.work() as session:
            repository = CalendarRepository(session)
            return [
                await repository.ensure_calendar(
                    principal.org_id,
                    principal.sub,
                    str(entry["id"]),
                    summary=entry.get("summary"),
                    primary=bool(entry.get("primary")),
                    user_email=principal.email,
                    now=self.clock.now(),
                )
                for entry in entries
            ]

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
            found = answer.get("calendars", {}).get(calendar_id, {})
            if found.get("errors"):
                raise NotFound(f"no such calendar: {calendar_id}")
            calendars[calendar_id] = [
                BusyPeriod.model_validate(period) for period in found.get("busy", [])
            ]
        return FreeBusyPublic(time_min=time_min, time_max=time_max, calendars=calendars)

    async def _own_calendar_ids(self, principal: Principal, wanted: Sequence[str]) -> None:
        """404 unless every id is ``primary`` or one of the caller's calendars (their calendar
        list is read again from Google before refusing)."""
        async with self.runtime.sessionmaker() as session:
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

    async def watch(self, principal: Principal, calendar_id: str | None) -> list[Any]:
        """A live channel per calendar (all of the user's by default), and a sync of each."""
        require_role(principal, Action.CREATE)
        if calendar_id is None:
            targets = await self.calendars(principal)
        else:
            targets = [await self._calendar(principal, calendar_id)]
        opened = []
        for calendar in targets:
            channel = await self.runtime.channels.ensure(owner_of(calendar), calendar.google_id)
            opened.append((calendar, channel))
            key = sync_key(calendar.id)
            async with self.work() as session:
                await self.runtime.coalescer.request(session, key)
            self.runtime.schedule_sync(key)
        return opened

    async def unwatch(self, principal: Principal) -> int:
        return await self.runtime.channels.stop_all(principal.org_id, principal.sub)


def _stored_when(value: dict[str, Any] | None) -> When:
    return parse_when(GoogleTime.model_validate(value or {}), "start", None)
