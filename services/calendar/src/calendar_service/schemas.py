"""API shapes. Writes accept the several shapes the frontend sends (aliases, times as RFC 3339
strings or Google's objects, attendees as strings or objects) and normalize them into one."""

from __future__ import annotations

import datetime as dt
from datetime import UTC, date, datetime, time
from itertools import islice
from typing import Annotated, Any, Final, Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rruleset, rrulestr
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from pipedesk_common.aliases import documented_aliases, resolve_aliases
from pipedesk_common.email_addresses import email_address_problem
from pipedesk_common.errors import invalid
from pipedesk_common.mirror.disconnect import KEEP_METADATA, OnDisconnect
from pipedesk_common.mirror.links import LinkInput, LinkPublic
from pipedesk_common.mirror.retention import RetentionDays

# Canonical name → the other names the frontend may use for it (at most one per payload).
ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "summary": ("title",),
    "description": ("notes",),
    "start": ("start_time", "startTime"),
    "end": ("end_time", "endTime"),
    "timezone": ("time_zone",),
}
EMAIL_PATTERN: Final = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
Visibility = Literal["default", "public", "private", "confidential"]
Notify = Literal["all", "external_only", "none"]
NOTIFY_DESCRIPTION: Final = (
    "Whom Google e-mails about this change: `all` guests (default), `external_only` (guests "
    "who do not use Google Calendar), or `none`."
)
# Our choice → Google's ``sendUpdates``.
SEND_UPDATES: Final[dict[str, str]] = {
    "all": "all",
    "external_only": "externalOnly",
    "none": "none",
}


class GoogleTime(BaseModel):
    """Google's shape: ``{"dateTime", "timeZone"}`` or, for an all-day event, ``{"date"}``."""

    model_config = ConfigDict(extra="forbid")

    dateTime: str | None = Field(None, max_length=64)
    date: str | None = Field(None, max_length=10)
    timeZone: str | None = Field(None, max_length=64)


TimeInput = str | GoogleTime
TIME_DESCRIPTION: Final = (
    "An RFC 3339 date-time (`2026-03-02T10:00:00+01:00`; without an offset, `timezone` says "
    "which), a date (`2026-03-02`, an all-day event), or Google's object "
    "`{dateTime, timeZone}` / `{date}`."
)


class When(BaseModel):
    """A normalized start or end: a ``day`` (all-day) or an aware ``moment``."""

    day: date | None = None
    moment: datetime | None = None
    time_zone: str | None = None

    def google(self) -> dict[str, str]:
        if self.day is not None:
            return {"date": self.day.isoformat()}
        assert self.moment is not None
        value = {"dateTime": self.moment.isoformat()}
        if self.time_zone:
            value["timeZone"] = self.time_zone
        return value

    def instant(self) -> datetime:
        if self.day is not None:
            return datetime.combine(self.day, time(), tzinfo=UTC)
        assert self.moment is not None
        return self.moment.astimezone(UTC)


def zone(name: str, field: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid(field, f"unknown time zone {name!r}") from None


def parse_when(value: TimeInput, field: str, timezone: str | None) -> When:
    if isinstance(value, GoogleTime):
        if (value.date is None) == (value.dateTime is None):
            raise invalid(field, "give exactly one of `date` and `dateTime`")
        if value.date is not None:
            return When(day=_parse_date(value.date, field))
        text, zone_name = value.dateTime, value.timeZone or timezone
        assert text is not None
        return _moment(text, field, zone_name)
    if len(value) == 10:
        return When(day=_parse_date(value, field))
    return _moment(value, field, timezone)


def _parse_date(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise invalid(field, "not a date (YYYY-MM-DD)") from None


def _moment(text: str, field: str, zone_name: str | None) -> When:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise invalid(field, "not an RFC 3339 date-time") from None
    if moment.tzinfo is None:
        if zone_name is None:
            raise invalid(field, "a date-time without an offset needs `timezone`", "missing_zone")
        moment = moment.replace(tzinfo=zone(zone_name, field))
    elif zone_name is not None:
        moment = moment.astimezone(zone(zone_name, field))
    return When(moment=moment, time_zone=zone_name)


def check_span(start: When, end: When) -> None:
    if (start.day is None) != (end.day is None):
        raise invalid("end", "start and end must both be dates (all-day) or both date-times")
    if end.instant() <= start.instant():
        raise invalid("end", "must be after start (an all-day event's end date is exclusive)")


class AttendeeInput(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    email: str = Field(max_length=320, pattern=EMAIL_PATTERN)
    optional: bool = False
    displayName: str | None = Field(None, max_length=300)


# "a@x.com" or {"email", "optional", "displayName"}
AttendeesInput = list[Annotated[str, Field(max_length=320)] | AttendeeInput]


def normalize_attendees(values: AttendeesInput) -> list[dict[str, Any]]:
    attendees: dict[str, dict[str, Any]] = {}
    for index, value in enumerate(values):
        item = value if isinstance(value, AttendeeInput) else None
        email = (item.email if item else str(value)).strip().lower()
        problem = email_address_problem(email)
        if problem is not None:
            raise invalid(f"attendees.{index}", f"not an email address: {problem}")
        entry: dict[str, Any] = {"email": email}
        if item is not None and item.optional:
            entry["optional"] = True
        if item is not None and item.displayName:
            entry["displayName"] = item.displayName
        attendees[email] = entry
    return list(attendees.values())


RECURRENCE_LINE: Final = r"^(?i:RRULE|EXDATE|RDATE)[;:]"
RECURRENCE_DESCRIPTION: Final = (
    "Makes the event a series (RFC 5545, as Google takes it): one `RRULE:` line "
    "(`RRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10`; a timed series' `UNTIL` in UTC, `…Z`) and any "
    "`EXDATE` / `RDATE` lines (`EXDATE;TZID=Europe/Paris:20300311T100000`, "
    "`EXDATE:20300311T090000Z`, or `EXDATE;VALUE=DATE:20300311` for an all-day series). Not "
    "allowed on one occurrence of a series."
)
RecurrenceLine = Annotated[str, Field(min_length=6, max_length=1000, pattern=RECURRENCE_LINE)]


def check_recurrence(lines: list[str], start: When) -> None:
    """422 naming the line Google would refuse: the set must have exactly one ``RRULE``, and
    each line must parse (python-dateutil's RFC 5545 reader) from the series' start in its zone,
    as Google and the emulator read it."""
    names = [line.partition(":")[0].partition(";")[0].upper() for line in lines]
    if names.count("RRULE") != 1:
        raise invalid("recurrence", "give exactly one RRULE line")
    first = (
        datetime.combine(start.day, time.min)  # floating: an all-day series has no zone
        if start.day is not None
        else start.moment
    )
    for index, (name, line) in enumerate(zip(names, lines, strict=True)):
        if name == "RRULE" and "COUNT=" in line.upper() and "UNTIL=" in line.upper():
            raise invalid(f"recurrence.{index}", "give COUNT or UNTIL, not both")
        text = line if name == "RRULE" else f"RRULE:FREQ=DAILY;COUNT=1\n{line}"
        try:
            rules = rrulestr(text, dtstart=first, forceset=True)
            assert isinstance(rules, rruleset)
            list(islice(rules, 2))
        except (ValueError, OverflowError) as error:
            raise invalid(f"recurrence.{index}", f"not a valid {name} line: {error}") from None
        except TypeError:
            message = (
                "FREQ is required"
                if name == "RRULE"
                else "a timed series' times need a zone (`…Z` or `;TZID=`), an all-day "
                "series' are dates (`;VALUE=DATE:`)"
            )
            raise invalid(f"recurrence.{index}", message) from None


def parse_occurrence(value: str) -> When:
    """An occurrence of a series, named by its original start: a date (all-day) or an
    RFC 3339 date-time with its offset."""
    if len(value) == 10:
        try:
            return When(day=date.fromisoformat(value))
        except ValueError:
            raise invalid("occurrence", "not a date", location="query") from None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise invalid("occurrence", "not an RFC 3339 date-time", location="query") from None
    if moment.tzinfo is None:
        raise invalid("occurrence", "give the offset (`Z`, `+01:00`)", location="query")
    return When(moment=moment)


class _EventWrite(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=documented_aliases(ALIASES))

    summary: str | None = Field(None, max_length=1024, description="The title.")
    description: str | None = Field(None, max_length=8192, description="Notes.")
    location: str | None = Field(None, max_length=1024)
    start: TimeInput | None = Field(None, description=TIME_DESCRIPTION)
    end: TimeInput | None = Field(None, description=TIME_DESCRIPTION)
    timezone: str | None = Field(
        None,
        max_length=64,
        description="IANA time zone of the event, and of date-times sent without an offset.",
    )
    all_day: bool | None = Field(
        None, description="Optional check: true requires dates, false date-times."
    )
    attendees: AttendeesInput | None = Field(
        None,
        max_length=200,
        description='Emails (`["a@x.com"]`) or objects `{"email", "optional", "displayName"}`.',
    )
    links: list[LinkInput] | None = Field(None, max_length=20)
    conference: bool | None = Field(
        None,
        description="true asks Google for a Meet (`hangout_link`; see `conference_status`: "
        "Google may create it later); false removes it.",
    )
    visibility: Visibility | None = None
    recurrence: list[RecurrenceLine] | None = Field(
        None, min_length=1, max_length=50, description=RECURRENCE_DESCRIPTION
    )
    notify: Notify = Field("all", description=NOTIFY_DESCRIPTION)

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        return resolve_aliases(data, ALIASES)

    def times(self) -> tuple[When | None, When | None]:
        if self.timezone is not None:
            zone(self.timezone, "timezone")
        start = parse_when(self.start, "start", self.timezone) if self.start is not None else None
        end = parse_when(self.end, "end", self.timezone) if self.end is not None else None
        for when in (start, end):
            if (
                when is not None
                and self.all_day is not None
                and self.all_day != (when.day is not None)
            ):
                raise invalid("all_day", "disagrees with the form of start or end")
        return start, end


def _create_example(schema: dict[str, Any]) -> None:
    documented_aliases(ALIASES)(schema)
    schema["examples"] = [
        {
            "summary": "Kick-off with Acme",
            "start": "2030-03-04T10:00:00+01:00",
            "end": "2030-03-04T11:00:00+01:00",
            "attendees": ["buyer@acme.example"],
            "links": [{"type": "lead", "id": "0193a5c2-7e4b-7c1d-9f3e-2b8d4a6c1e05"}],
            "conference": True,
        }
    ]


class EventCreate(_EventWrite):
    """A new event. ``start`` and ``end`` are required."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_create_example)

    calendar_id: str = Field(
        "primary", min_length=1, max_length=500, description="`primary` or a calendar's id"
    )


class EventUpdate(_EventWrite):
    """Fields to change; absent fields stay as they are. ``links`` replaces the links."""


class RsvpRequest(BaseModel):
    """The caller's answer to an invitation."""

    model_config = ConfigDict(extra="forbid")

    response: Literal["accepted", "declined", "tentative"]
    comment: str | None = Field(None, max_length=1024, description="A note to the organizer.")


class EventTimePublic(BaseModel):
    date_time: AwareDatetime | None = Field(None, description="Set for timed events")
    date: dt.date | None = Field(None, description="Set for all-day events")
    time_zone: str | None = None


class AttendeePublic(BaseModel):
    email: str
    display_name: str | None = None
    optional: bool = False
    response_status: str | None = None
    organizer: bool = False


class EventPublic(BaseModel):
    id: UUID
    calendar_id: str = Field(description="Google's id of the calendar")
    google_id: str = Field(description="Google's id of the event")
    status: str
    summary: str | None
    description: str | None
    location: str | None
    start: EventTimePublic | None
    end: EventTimePublic | None
    all_day: bool
    time_zone: str | None
    attendees: list[AttendeePublic]
    organizer: str | None
    is_organizer: bool = Field(
        description="Whether the caller organizes it; else it is an invitation, whose shared "
        "fields only the organizer may change (answer it with `…/rsvp`)"
    )
    response_status: str | None = Field(
        description="The caller's own answer, when they are a guest (`needsAction`, "
        "`accepted`, `declined`, `tentative`)"
    )
    hangout_link: str | None
    conference_status: str | None = Field(
        description="The Meet asked for: `pending` (Google is still creating it; the link comes "
        "with a later sync), `success` (`hangout_link`), `failure`; null when none was asked for"
    )
    html_link: str | None
    visibility: str
    recurrence: list[str] = Field(description="A series' rule (RFC 5545 lines); empty otherwise")
    recurring_event_id: str | None = Field(
        description="On an occurrence of a series changed or cancelled on its own (an "
        "exception): Google's id of the series"
    )
    original_start: EventTimePublic | None = Field(
        description="On an exception: when the occurrence was due, before it was moved"
    )
    links: list[LinkPublic]
    version: int
    created_at: AwareDatetime
    updated_at: AwareDatetime


class CalendarPublic(BaseModel):
    id: str = Field(description="Google's id of the calendar")
    summary: str | None
    primary: bool
    synced_at: AwareDatetime | None


class BusyPeriod(BaseModel):
    start: AwareDatetime
    end: AwareDatetime


class FreeBusyPublic(BaseModel):
    time_min: AwareDatetime
    time_max: AwareDatetime
    calendars: dict[str, list[BusyPeriod]]


class WatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    calendar_id: str | None = Field(
        None,
        min_length=1,
        max_length=500,
        description="One calendar; absent: every calendar of the user",
    )


class ChannelPublic(BaseModel):
    id: str
    calendar_id: str
    expires_at: AwareDatetime


class WatchPublic(BaseModel):
    channels: list[ChannelPublic]


class OrgSettingsPublic(BaseModel):
    retention_days: int | None = Field(
        description="How many days a mirrored event is kept after it ended: older events leave "
        "PipeDesk and every timeline (the `calendar.retention` job; a series with a recurrence "
        "rule is kept while it is in the calendar); null: no limit",
    )
    on_disconnect: OnDisconnect = Field(
        description="What the events mirrored from a user's calendars become once they "
        "disconnect Google Calendar (or Google revokes their access): `keep_metadata` keeps them "
        "on timelines as last seen; `remove` removes them from PipeDesk and from every timeline "
        "no other calendar's copy holds them on"
    )
    updated_at: datetime | None


class OrgSettingsWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    retention_days: RetentionDays | None = None
    on_disconnect: OnDisconnect = KEEP_METADATA
