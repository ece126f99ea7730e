"""The Google Calendar calls this service makes, and what Google answers as typed models."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from datetime import UTC, datetime, time
from typing import Any

from pydantic import Field

from pipedesk_common.errors import Forbidden
from pipedesk_common.google import GoogleApi, GoogleCallError, GoogleUser
from pipedesk_common.google.push import OpenedChannel, WatchCall
from pipedesk_common.google.resources import GoogleModel, GoogleResource, Page, as_utc
from pipedesk_common.mirror.paged import WatermarkExpired

CANCELLED = "cancelled"


class NotOrganizer(Forbidden):
    """Google lets only an event's organizer change what its guests share."""

    slug, title = "not-organizer", "Only the event's organizer may change it"


class EventTime(GoogleModel):
    """A start or end: ``date`` for an all-day event, else ``dateTime`` (and its zone)."""

    date: dt.date | None = None
    date_time: datetime | None = None
    time_zone: str | None = None

    @property
    def instant(self) -> datetime | None:
        """The moment (an all-day event's date at midnight UTC)."""
        if self.date is not None:
            return datetime.combine(self.date, time(), tzinfo=UTC)
        return as_utc(self.date_time)


class Person(GoogleModel):
    email: str | None = None
    display_name: str | None = None
    is_self: bool = Field(False, alias="self")


class Attendee(Person):
    optional: bool = False
    response_status: str | None = None
    organizer: bool = False


class GoogleEvent(GoogleResource):
    id: str
    ical_uid: str | None = Field(None, alias="iCalUID")
    status: str = "confirmed"
    etag: str | None = None
    updated: datetime | None = None
    summary: str | None = None
    description: str | None = None
    location: str | None = None
    start: EventTime | None = None
    end: EventTime | None = None
    attendees: list[Attendee] = []
    organizer: Person | None = None
    hangout_link: str | None = None
    html_link: str | None = None
    visibility: str = "default"
    recurrence: list[str] = []
    recurring_event_id: str | None = None
    original_start_time: EventTime | None = None

    @property
    def cancelled(self) -> bool:
        return self.status == CANCELLED

    @property
    def conference_status(self) -> str | None:
        """Where the Meet asked for stands: ``pending`` (Google is still creating it),
        ``success`` (``hangout_link`` is set) or ``failure``; None when none was asked for."""
        conference = self.raw.get("conferenceData") or {}
        status = ((conference.get("createRequest") or {}).get("status") or {}).get("statusCode")
        if isinstance(status, str):
            return status
        return "success" if self.hangout_link else None

    @property
    def organized_by_owner(self) -> bool:
        """Whether the calendar holding this copy is the organizer's (else: an invitation)."""
        return self.organizer is None or self.organizer.is_self

    def own_attendance(self) -> Attendee | None:
        """The calendar owner's entry among the attendees (an invitation's guest)."""
        return next((a for a in self.attendees if a.is_self), None)

    def attendee_emails(self) -> list[str]:
        return sorted({a.email.lower() for a in self.attendees if a.email})


class CalendarListEntry(GoogleResource):
    id: str
    summary: str | None = None
    primary: bool = False


class BusyTime(GoogleModel):
    start: datetime
    end: datetime


class FreeBusyCalendar(GoogleModel):
    busy: list[BusyTime] = []
    errors: list[dict[str, Any]] = []


class FreeBusy(GoogleResource):
    calendars: dict[str, FreeBusyCalendar] = {}


class WatchAnswer(GoogleResource):
    resource_id: str
    expiration: str | int | None = None


class CalendarGoogle:
    def __init__(self, api: GoogleApi) -> None:
        self.api = api

    async def calendars(self, user: GoogleUser) -> list[CalendarListEntry]:
        return await self.api.list_all(
            user,
            "calendarList.list",
            lambda client, token: client.calendarList().list(pageToken=token),
            CalendarListEntry,
        )

    async def calendar(self, user: GoogleUser, calendar_id: str) -> CalendarListEntry:
        return await self.api.parsed(
            user,
            "calendarList.get",
            lambda client: client.calendarList().get(calendarId=calendar_id),
            CalendarListEntry,
        )

    async def insert(
        self, user: GoogleUser, calendar_id: str, body: dict[str, Any], *, send_updates: str
    ) -> tuple[GoogleEvent, bool]:
        """Insert ``body`` (which carries our chosen ``id``); (event, created). Google's 409 for
        that id means an earlier attempt already created it: that event is answered.
        ``send_updates`` is Google's ``sendUpdates`` (``all``, ``externalOnly``, ``none``)."""
        try:
            created = await self.api.parsed(
                user,
                "events.insert",
                lambda client: client.events().insert(
                    calendarId=calendar_id,
                    body=body,
                    conferenceDataVersion=1,
                    sendUpdates=send_updates,
                ),
                GoogleEvent,
            )
        except GoogleCallError as error:
            if error.google_status != 409:
                raise
            return await self.get(user, calendar_id, body["id"]), False
        return created, True

    async def get(self, user: GoogleUser, calendar_id: str, event_id: str) -> GoogleEvent:
        return await self.api.parsed(
            user,
            "events.get",
            lambda client: client.events().get(calendarId=calendar_id, eventId=event_id),
            GoogleEvent,
        )

    async def instance(
        self, user: GoogleUser, calendar_id: str, event_id: str, original_start: str
    ) -> GoogleEvent | None:
        """The instance of series ``event_id`` originally starting at ``original_start`` (an
        RFC 3339 date-time, or a date for an all-day series), as Google serves it now (moved:
        its exception); None when the series has no such instance, or it was cancelled."""
        page = await self.api.page(
            user,
            "events.instances",
            lambda client: client.events().instances(
                calendarId=calendar_id, eventId=event_id, originalStart=original_start
            ),
            GoogleEvent,
        )
        return page.items[0] if page.items else None

    async def patch(
        self,
        user: GoogleUser,
        calendar_id: str,
        event_id: str,
        body: dict[str, Any],
        *,
        send_updates: str,
    ) -> GoogleEvent:
        """``NotOrganizer`` when Google refuses a guest's change of shared fields."""
        try:
            return await self.api.parsed(
                user,
                "events.patch",
                lambda client: client.events().patch(
                    calendarId=calendar_id,
                    eventId=event_id,
                    body=body,
                    conferenceDataVersion=1,
                    sendUpdates=send_updates,
                ),
                GoogleEvent,
            )
        except Forbidden as error:
            if any(e.code == "forbiddenForNonOrganizer" for e in error.errors or []):
                raise NotOrganizer(
                    "only the organizer may change this event (Google: forbiddenForNonOrganizer)"
                ) from error
            raise

    async def cancel(
        self, user: GoogleUser, calendar_id: str, event_id: str, *, send_updates: str
    ) -> None:
        """Delete (Google marks it cancelled); already deleted counts as done."""
        await self.api.ensure_gone(
            user,
            "events.delete",
            lambda client: client.events().delete(
                calendarId=calendar_id, eventId=event_id, sendUpdates=send_updates
            ),
        )

    async def page(
        self,
        user: GoogleUser,
        calendar_id: str,
        *,
        sync_token: str | None,
        page_token: str | None,
        page_size: int,
    ) -> Page[GoogleEvent]:
        """One page of an incremental (``sync_token``) or full listing; ``WatermarkExpired``
        when Google no longer accepts the sync token (``410``)."""
        # Every page repeats the first page's parameters (the sync token included), as Google's
        # sync guide does: a page token with other parameters is undefined behaviour.
        parameters: dict[str, Any] = {"calendarId": calendar_id, "maxResults": page_size}
        if sync_token is not None:
            parameters["syncToken"] = sync_token
        if page_token is not None:
            parameters["pageToken"] = page_token
        try:
            return await self.api.page(
                user,
                "events.list",
                lambda client: client.events().list(**parameters),
                GoogleEvent,
                skip_unreadable=True,
            )
        except GoogleCallError as error:
            if error.google_status == 410:
                raise WatermarkExpired(calendar_id) from error
            raise

    async def free_busy(
        self, user: GoogleUser, time_min: datetime, time_max: datetime, calendar_ids: Sequence[str]
    ) -> FreeBusy:
        body = {
            "timeMin": time_min.isoformat(),
            "timeMax": time_max.isoformat(),
            "items": [{"id": calendar_id} for calendar_id in calendar_ids],
        }
        return await self.api.parsed(
            user, "freebusy.query", lambda client: client.freebusy().query(body=body), FreeBusy
        )

    def watcher(self, address: str) -> WatchCall:
        """``events.watch`` on a calendar, notifications sent to ``address``."""

        async def watch(
            user: GoogleUser, calendar_id: str, channel_id: str, token: str, ttl_seconds: int
        ) -> OpenedChannel:
            body = {
                "id": channel_id,
                "type": "web_hook",
                "address": address,
                "token": token,
                "params": {"ttl": str(ttl_seconds)},
            }
            answer = await self.api.parsed(
                user,
                "events.watch",
                lambda client: client.events().watch(calendarId=calendar_id, body=body),
                WatchAnswer,
            )
            return OpenedChannel(resource_id=answer.resource_id, expiration=answer.expiration)

        return watch

    async def stop(self, user: GoogleUser, channel_id: str, resource_id: str) -> None:
        """Stop a channel; one Google no longer knows (expired, stopped) counts as stopped."""
        await self.api.stop_channel(user, channel_id, resource_id)
