"""The emulated Google Calendar API v3: calendar list, events (with sync tokens, recurrence and
its exceptions, Meet conferences, invitations), free/busy, push channels, and seed routes under
``/_emulator/calendar/``.

State lives in ``emulator.apis["calendar"]`` (a ``CalendarState``). Every change to a calendar bumps
its change sequence; a sync token carries the sequence the client has seen (and the calendar's token
epoch, which ``invalidate-sync-tokens`` bumps so that every earlier token answers 410).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import string
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rruleset, rrulestr
from email_validator import EmailNotValidError, validate_email
from fastapi import APIRouter, Request, Response

from google_emulator.core import (
    Emulator,
    GoogleError,
    begin,
    emulator_of,
    rfc3339,
)
from google_emulator.oauth import oauth_state
from google_emulator.paging import paged
from google_emulator.push import Deliveries, PushChannel, open_channel, stop_channel

router = APIRouter()

DEFAULT_CHANNEL_TTL = timedelta(days=7)
DEFAULT_PAGE_SIZE = 250
MAX_PAGE_SIZE = 2500
MAX_INSTANCES = 1000
# events.list parameters Google refuses beside a syncToken.
SYNC_TOKEN_CONFLICTS = frozenset(
    {
        "iCalUID",
        "orderBy",
        "privateExtendedProperty",
        "q",
        "sharedExtendedProperty",
        "timeMin",
        "timeMax",
        "updatedMin",
    }
)
EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")
MEET_ICON = "https://fonts.gstatic.com/s/i/productlogos/meet_2020q4/v6/web-512dp/logo_meet_2020q4_color_2x_web_512dp.png"

STRING_FIELDS = ("summary", "description", "location", "colorId")
BOOL_FIELDS = (
    "guestsCanModify",
    "guestsCanInviteOthers",
    "guestsCanSeeOtherGuests",
    "anyoneCanAddSelf",
)
ENUM_FIELDS = {
    "status": ("confirmed", "tentative", "cancelled"),
    "visibility": ("default", "public", "private", "confidential"),
    "transparency": ("opaque", "transparent"),
}
RESPONSE_STATUSES = ("needsAction", "declined", "tentative", "accepted")
WRITABLE = (
    *STRING_FIELDS,
    *BOOL_FIELDS,
    *ENUM_FIELDS,
    "start",
    "end",
    "recurrence",
    "attendees",
    "reminders",
    "extendedProperties",
)
# What makes an event an exception of a series (an instance changed or cancelled on its own);
# Google sets them, the client never writes them.
INSTANCE_FIELDS = ("recurringEventId", "originalStartTime")


# ---------------------------------------------------------------------------------------------
# State


@dataclass
class StoredEvent:
    """One event of one calendar: the client-writable ``fields`` and the ``resource`` served.

    On the organizer's event: ``invited``, the users whose primary calendars got a copy, and
    ``removed_by``, those who deleted their copy themselves (it is not put back)."""

    fields: dict[str, Any]
    resource: dict[str, Any]
    order: int
    changed: int
    invited: set[str] = field(default_factory=set)
    removed_by: set[str] = field(default_factory=set)


@dataclass
class CalendarData:
    id: str
    owner: str
    summary: str
    primary: bool
    events: dict[str, StoredEvent] = field(default_factory=dict)
    seq: int = 0
    epoch: int = 0


@dataclass
class CalendarState:
    calendars: dict[str, CalendarData] = field(default_factory=dict)
    user_calendars: dict[str, list[str]] = field(default_factory=dict)
    channels: dict[str, PushChannel] = field(default_factory=dict)
    deliveries: Deliveries = field(default_factory=Deliveries)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    # How new Meet create requests of a user are answered (default: success at once).
    conference_outcomes: dict[str, str] = field(default_factory=dict)


def state_of(emulator: Emulator) -> CalendarState:
    state = emulator.apis.get("calendar")
    if not isinstance(state, CalendarState):
        state = CalendarState()
        emulator.apis["calendar"] = state
    return state


def ensure_user(state: CalendarState, email: str) -> list[str]:
    """The user's calendar ids, creating their primary calendar on first use."""
    email = email.lower()
    if email not in state.user_calendars:
        state.user_calendars[email] = [email]
        state.calendars.setdefault(email, CalendarData(email, email, email, primary=True))
    return state.user_calendars[email]


def calendar_for(state: CalendarState, email: str, calendar_id: str) -> CalendarData:
    ids = ensure_user(state, email)
    wanted = email.lower() if calendar_id == "primary" else calendar_id
    if wanted not in ids:
        wanted = wanted.lower()
    if wanted not in ids:
        raise GoogleError(404, "notFound", "Not Found")
    return state.calendars[wanted]


def stored_event(calendar: CalendarData, event_id: str) -> StoredEvent:
    stored = calendar.events.get(event_id)
    if stored is None:
        raise GoogleError(404, "notFound", "Not Found")
    return stored


# ---------------------------------------------------------------------------------------------
# Parsing helpers


def bad_request(message: str, reason: str = "invalid") -> GoogleError:
    return GoogleError(400, reason, message)


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise bad_request("Parse Error", "parseError") from exc
    if not isinstance(body, dict):
        raise bad_request("Parse Error", "parseError")
    return body


def parse_timestamp(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise bad_request(f"Invalid value for: {name}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise bad_request(f"Invalid value for: {name}") from exc
    if moment.tzinfo is None:
        raise bad_request(f"Invalid value for: {name} (a time zone offset is required)")
    return moment.astimezone(UTC)


def query_bool(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "false").lower()
    if value not in ("true", "false"):
        raise bad_request(f"Invalid boolean value for: {name}")
    return value == "true"


def query_int(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise bad_request(f"Invalid integer value for: {name}") from exc


def encode_token(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def decode_token(token: str) -> dict[str, Any] | None:
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error):
        return None
    return payload if isinstance(payload, dict) else None


def format_date_time(moment: datetime) -> str:
    text = moment.isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


# ---------------------------------------------------------------------------------------------
# Event times and recurrence


@dataclass(frozen=True)
class EventTime:
    """A parsed start or end: an all-day ``day``, or an aware ``moment``."""

    day: date | None
    moment: datetime | None
    time_zone: str | None

    def utc(self) -> datetime:
        if self.moment is not None:
            return self.moment.astimezone(UTC)
        assert self.day is not None
        return datetime(self.day.year, self.day.month, self.day.day, tzinfo=UTC)

    def shifted(self, delta: timedelta) -> dict[str, Any]:
        if self.day is not None:
            return {"date": (self.day + delta).isoformat()}
        assert self.moment is not None
        out: dict[str, Any] = {"dateTime": format_date_time(self.moment + delta)}
        if self.time_zone:
            out["timeZone"] = self.time_zone
        return out

    def instance_suffix(self, delta: timedelta) -> str:
        if self.day is not None:
            return (self.day + delta).strftime("%Y%m%d")
        assert self.moment is not None
        return (self.moment + delta).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def parse_event_time(value: Any, name: str) -> EventTime:
    if not isinstance(value, dict) or not (value.get("date") or value.get("dateTime")):
        raise bad_request(f"Missing {name} time.", "required")
    if value.get("date") and value.get("dateTime"):
        raise bad_request(f"Invalid {name} time: only one of date and dateTime may be set.")
    zone_name = value.get("timeZone")
    if zone_name is not None and not isinstance(zone_name, str):
        raise bad_request(f"Invalid {name} time zone.")
    zone: ZoneInfo | None = None
    if zone_name:
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise bad_request(f"Invalid time zone definition for {name} time.") from exc
    if value.get("date"):
        try:
            return EventTime(date.fromisoformat(str(value["date"])), None, None)
        except ValueError as exc:
            raise bad_request(f"Invalid {name} date.") from exc
    try:
        moment = datetime.fromisoformat(str(value["dateTime"]))
    except ValueError as exc:
        raise bad_request(f"Invalid {name} dateTime.") from exc
    if moment.tzinfo is None:
        if zone is None:
            raise bad_request(f"Missing time zone definition for {name} time.", "required")
        moment = moment.replace(tzinfo=zone)
    elif zone is not None:
        moment = moment.astimezone(zone)
    return EventTime(None, moment.replace(microsecond=0), zone_name or None)


def event_times(fields: dict[str, Any]) -> tuple[EventTime, EventTime]:
    start = parse_event_time(fields.get("start"), "start")
    end = parse_event_time(fields.get("end"), "end")
    if (start.day is None) != (end.day is None):
        raise bad_request("Start and end must both be dates or both be date-times.")
    if end.utc() <= start.utc() and not (start.day is None and end.utc() == start.utc()):
        raise GoogleError(400, "timeRangeEmpty", "The specified time range is empty.")
    return start, end


RECURRENCE_PROPERTIES = ("RRULE", "EXDATE", "RDATE")


def recurrence_set(lines: list[str], start: EventTime) -> rruleset:
    """A series' occurrences, as Google reads its ``recurrence``: one ``RRULE`` line and any
    ``EXDATE`` / ``RDATE`` lines (RFC 5545), from the event's start in its own time zone."""
    names = [line.partition(":")[0].partition(";")[0].strip().upper() for line in lines]
    if names.count("RRULE") != 1 or any(name not in RECURRENCE_PROPERTIES for name in names):
        raise bad_request("Invalid recurrence rule.")
    rule = lines[names.index("RRULE")].upper()
    if "COUNT=" in rule and "UNTIL=" in rule:  # RFC 5545: at most one of them
        raise bad_request("Invalid recurrence rule.")
    try:
        rules = rrulestr("\n".join(lines), dtstart=local_start(start), forceset=True)
        if not isinstance(rules, rruleset):
            raise TypeError("not a recurrence set")
        list(islice(rules, 2))
    except (ValueError, TypeError, OverflowError) as exc:
        raise bad_request("Invalid recurrence rule.") from exc
    return rules


def local_start(start: EventTime) -> datetime:
    """Where a series' rule starts: the start in its own zone (an all-day one at midnight)."""
    if start.day is not None:
        return datetime.combine(start.day, time.min)  # floating: an all-day series has no zone
    assert start.moment is not None
    return start.moment


def expand(
    resource: dict[str, Any], window_start: datetime | None, window_end: datetime | None
) -> list[dict[str, Any]]:
    """The instances of a recurring event overlapping the window (all of them if none, at most
    ``MAX_INSTANCES``), as Google's virtual events ``{id}_{original start}`` with
    ``recurringEventId`` and ``originalStartTime``. A single event is its own only instance."""
    start, end = event_times(resource)
    if not resource.get("recurrence"):
        return [resource]
    duration = end.utc() - start.utc()
    instances: list[dict[str, Any]] = []
    for occurrence in islice(recurrence_set(resource["recurrence"], start), MAX_INSTANCES):
        begins = (
            EventTime(occurrence.date(), None, None)
            if start.day is not None
            else EventTime(None, occurrence, start.time_zone)
        )
        if window_end is not None and begins.utc() >= window_end:
            break
        if window_start is not None and begins.utc() + duration <= window_start:
            continue
        ends = (
            EventTime(occurrence.date() + duration, None, None)
            if start.day is not None
            else EventTime(
                None, (begins.utc() + duration).astimezone(occurrence.tzinfo), end.time_zone
            )
        )
        instance = {k: v for k, v in resource.items() if k != "recurrence"}
        instance["id"] = instance_id(resource["id"], begins)
        instance["recurringEventId"] = resource["id"]
        instance["originalStartTime"] = begins.shifted(timedelta(0))
        instance["start"] = begins.shifted(timedelta(0))
        instance["end"] = ends.shifted(timedelta(0))
        instances.append(instance)
    return instances


def instance_id(series_id: str, original_start: EventTime) -> str:
    """Google's id of one instance of a series: the series' id and the original start in UTC."""
    return f"{series_id}_{original_start.instance_suffix(timedelta(0))}"


def overlaps(
    resource: dict[str, Any], window_start: datetime | None, window_end: datetime | None
) -> bool:
    if resource.get("recurrence"):
        return bool(expand(resource, window_start, window_end))
    start, end = event_times(resource)
    if window_start is not None and end.utc() <= window_start:
        return False
    return not (window_end is not None and start.utc() >= window_end)


# ---------------------------------------------------------------------------------------------
# Building event resources


def clean_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The client-writable fields of an event body, type-checked. ``None`` values are kept (they
    delete a field in a patch)."""
    fields: dict[str, Any] = {}
    for name in WRITABLE:
        if name not in body:
            continue
        value = body[name]
        if value is None:
            fields[name] = None
        elif name in STRING_FIELDS:
            fields[name] = require(isinstance(value, str), name, value)
        elif name in BOOL_FIELDS:
            fields[name] = require(isinstance(value, bool), name, value)
        elif name in ENUM_FIELDS:
            fields[name] = require(value in ENUM_FIELDS[name], name, value)
        elif name in ("start", "end"):
            require(isinstance(value, dict), name, value)
            fields[name] = {k: value[k] for k in ("date", "dateTime", "timeZone") if value.get(k)}
        elif name == "recurrence":
            ok = isinstance(value, list) and all(isinstance(line, str) for line in value)
            fields[name] = require(ok, name, list(value) if ok else value)
        elif name == "attendees":
            fields[name] = clean_attendees(value)
        elif name == "reminders":
            fields[name] = clean_reminders(value)
        else:
            fields[name] = clean_extended_properties(value)
    return fields


def is_email_address(value: str) -> bool:
    """An address Google takes as an attendee: well-formed (its domain is not looked up)."""
    try:
        validate_email(value, check_deliverability=False, test_environment=True)
    except EmailNotValidError:
        return False
    return True


def require(condition: bool, name: str, value: Any) -> Any:
    if not condition:
        raise bad_request(f"Invalid value for: {name}")
    return value


def clean_attendees(value: Any) -> list[dict[str, Any]]:
    require(isinstance(value, list), "attendees", value)
    attendees: list[dict[str, Any]] = []
    for item in value:
        require(isinstance(item, dict), "attendees", item)
        email = item.get("email")
        if not isinstance(email, str) or not email:
            raise bad_request("Missing attendee email.", "required")
        if not is_email_address(email):
            raise bad_request("Invalid attendee email.")
        attendee: dict[str, Any] = {"email": email.lower()}
        if item.get("displayName") is not None:
            attendee["displayName"] = require(
                isinstance(item["displayName"], str), "displayName", item["displayName"]
            )
        if item.get("optional") is not None:
            attendee["optional"] = require(
                isinstance(item["optional"], bool), "optional", item["optional"]
            )
        if item.get("comment") is not None:
            attendee["comment"] = require(
                isinstance(item["comment"], str), "comment", item["comment"]
            )
        status = item.get("responseStatus", "needsAction")
        attendee["responseStatus"] = require(status in RESPONSE_STATUSES, "responseStatus", status)
        attendees.append(attendee)
    return attendees


def clean_reminders(value: Any) -> dict[str, Any]:
    require(isinstance(value, dict), "reminders", value)
    reminders: dict[str, Any] = {"useDefault": bool(value.get("useDefault", False))}
    overrides = value.get("overrides")
    if overrides:
        require(isinstance(overrides, list), "reminders.overrides", overrides)
        reminders["overrides"] = []
        for item in overrides:
            ok = (
                isinstance(item, dict)
                and item.get("method") in ("email", "popup")
                and isinstance(item.get("minutes"), int)
            )
            require(ok, "reminders.overrides", item)
            reminders["overrides"].append({"method": item["method"], "minutes": item["minutes"]})
    return reminders


def clean_extended_properties(value: Any) -> dict[str, Any]:
    require(isinstance(value, dict), "extendedProperties", value)
    properties: dict[str, Any] = {}
    for scope in ("private", "shared"):
        values = value.get(scope)
        if values:
            ok = isinstance(values, dict) and all(isinstance(v, str) for v in values.values())
            require(ok, f"extendedProperties.{scope}", values)
            properties[scope] = {str(k): v for k, v in values.items()}
    return properties


def meet_code() -> str:
    letters = string.ascii_lowercase
    return "-".join("".join(secrets.choice(letters) for _ in range(n)) for n in (3, 4, 3))


CONFERENCE_OUTCOMES = ("success", "pending", "failure")


def meet_conference(request_id: str) -> dict[str, Any]:
    """A created Meet: the create request's status ``success``, its link and code."""
    code = meet_code()
    return {
        "createRequest": {
            "requestId": request_id,
            "conferenceSolutionKey": {"type": "hangoutsMeet"},
            "status": {"statusCode": "success"},
        },
        "entryPoints": [
            {
                "entryPointType": "video",
                "uri": f"https://meet.google.com/{code}",
                "label": f"meet.google.com/{code}",
            }
        ],
        "conferenceSolution": {
            "key": {"type": "hangoutsMeet"},
            "name": "Google Meet",
            "iconUri": MEET_ICON,
        },
        "conferenceId": code,
    }


def unsettled_conference(request_id: str, status: str) -> dict[str, Any]:
    """A create request Google is still working on (``pending``) or gave up (``failure``)."""
    return {
        "createRequest": {
            "requestId": request_id,
            "conferenceSolutionKey": {"type": "hangoutsMeet"},
            "status": {"statusCode": status},
        }
    }


def pending_request(conference: dict[str, Any] | None) -> str | None:
    """The requestId of a create request still ``pending``."""
    create = (conference or {}).get("createRequest") or {}
    if (create.get("status") or {}).get("statusCode") == "pending":
        return str(create["requestId"])
    return None


def conference_for(
    body_conference: Any, existing: dict[str, Any] | None, outcome: str = "success"
) -> dict[str, Any] | None:
    """Conference data for ``conferenceDataVersion=1``: a Meet for a createRequest (kept when the
    requestId is unchanged), else the client's own entry points. ``outcome`` is how Google
    answers a new create request: at once (``success``), later (``pending``), or ``failure``."""
    if body_conference is None:
        return None
    require(isinstance(body_conference, dict), "conferenceData", body_conference)
    create = body_conference.get("createRequest")
    if create is not None:
        require(isinstance(create, dict), "conferenceData.createRequest", create)
        request_id = create.get("requestId")
        if not isinstance(request_id, str) or not request_id:
            raise bad_request("Missing conferenceData.createRequest.requestId.", "required")
        kind = (create.get("conferenceSolutionKey") or {}).get("type", "hangoutsMeet")
        if kind != "hangoutsMeet":
            raise bad_request("Invalid conference type value (the emulator creates only Meet).")
        if existing and existing.get("createRequest", {}).get("requestId") == request_id:
            return existing
        if outcome == "success":
            return meet_conference(request_id)
        return unsettled_conference(request_id, outcome)
    conference: dict[str, Any] = {}
    if isinstance(body_conference.get("conferenceId"), str):
        conference["conferenceId"] = body_conference["conferenceId"]
    solution = body_conference.get("conferenceSolution")
    if isinstance(solution, dict) and isinstance(solution.get("key"), dict):
        conference["conferenceSolution"] = {"key": {"type": str(solution["key"].get("type", ""))}}
        if isinstance(solution.get("name"), str):
            conference["conferenceSolution"]["name"] = solution["name"]
    points = body_conference.get("entryPoints")
    if isinstance(points, list):
        keys = ("entryPointType", "uri", "label", "pin", "accessCode", "meetingCode", "passcode")
        conference["entryPoints"] = [
            {k: str(point[k]) for k in keys if point.get(k) is not None}
            for point in points
            if isinstance(point, dict)
        ]
    return conference or None


def html_link(event_id: str, calendar_id: str) -> str:
    eid = base64.urlsafe_b64encode(f"{event_id} {calendar_id}".encode()).decode().rstrip("=")
    return f"https://www.google.com/calendar/event?eid={eid}"


def new_etag(emulator: Emulator) -> str:
    return f'"{int(emulator.clock.now().timestamp() * 1000)}{emulator.next_number():06d}"'


def rendered_attendees(
    attendees: list[dict[str, Any]], organizer: str, calendar_id: str
) -> list[dict[str, Any]]:
    rendered = []
    for item in attendees:
        attendee = dict(item)
        if attendee["email"] == organizer:
            attendee["organizer"] = True
        if attendee["email"] == calendar_id:
            attendee["self"] = True
        rendered.append(attendee)
    return rendered


def meet_link(conference: dict[str, Any]) -> str | None:
    if conference.get("conferenceSolution", {}).get("key", {}).get("type") != "hangoutsMeet":
        return None
    for point in conference.get("entryPoints", []):
        if point.get("entryPointType") == "video" and point.get("uri"):
            return str(point["uri"])
    return None


def render(
    emulator: Emulator,
    calendar: CalendarData,
    event_id: str,
    fields: dict[str, Any],
    *,
    previous: dict[str, Any] | None,
    creator: str,
    organizer: str,
    ical_uid: str | None = None,
) -> dict[str, Any]:
    """The full event resource served for ``fields`` (which were validated)."""
    now = rfc3339(emulator.clock.now())
    resource: dict[str, Any] = {
        "kind": "calendar#event",
        "etag": new_etag(emulator),
        "id": event_id,
        "status": fields.get("status") or "confirmed",
        "htmlLink": html_link(event_id, calendar.id),
        "created": previous["created"] if previous else now,
        "updated": now,
    }
    for name in (*STRING_FIELDS, *BOOL_FIELDS, "visibility", "transparency"):
        if fields.get(name) is not None:
            resource[name] = fields[name]
    resource["creator"] = {"email": creator}
    if creator == calendar.owner:
        resource["creator"]["self"] = True
    resource["organizer"] = {"email": organizer}
    if organizer == calendar.id:
        resource["organizer"]["self"] = True
        if not calendar.primary:
            resource["organizer"]["displayName"] = calendar.summary
    resource["start"] = fields["start"]
    resource["end"] = fields["end"]
    if fields.get("recurrence"):
        resource["recurrence"] = fields["recurrence"]
    for name in INSTANCE_FIELDS:
        if fields.get(name):
            resource[name] = fields[name]
    resource["iCalUID"] = ical_uid or (
        previous["iCalUID"] if previous else f"{event_id}@google.com"
    )
    resource["sequence"] = previous["sequence"] + 1 if previous else 0
    if fields.get("attendees"):
        resource["attendees"] = rendered_attendees(fields["attendees"], organizer, calendar.id)
    if fields.get("extendedProperties"):
        resource["extendedProperties"] = fields["extendedProperties"]
    conference = fields.get("conferenceData")
    if conference:
        resource["conferenceData"] = conference
        link = meet_link(conference)
        if link:
            resource["hangoutLink"] = link
    resource["reminders"] = fields.get("reminders") or {"useDefault": True}
    resource["eventType"] = "default"
    return resource


def write_event(
    emulator: Emulator,
    calendar: CalendarData,
    event_id: str,
    fields: dict[str, Any],
    *,
    creator: str,
    organizer: str,
    ical_uid: str | None = None,
) -> dict[str, Any]:
    """Validate and store ``fields`` as event ``event_id`` (new or replaced); record the change."""
    fields = {k: v for k, v in fields.items() if v is not None}
    event_times(fields)
    if fields.get("recurrence"):
        recurrence_set(fields["recurrence"], event_times(fields)[0])
    existing = calendar.events.get(event_id)
    previous = existing.resource if existing else None
    resource = render(
        emulator,
        calendar,
        event_id,
        fields,
        previous=previous,
        creator=creator,
        organizer=organizer,
        ical_uid=ical_uid,
    )
    calendar.seq += 1
    order = existing.order if existing else emulator.next_number()
    stored = StoredEvent(fields, resource, order, calendar.seq)
    if existing is not None:
        stored.invited, stored.removed_by = existing.invited, existing.removed_by
    calendar.events[event_id] = stored
    return resource


def cancel_event(emulator: Emulator, calendar: CalendarData, stored: StoredEvent) -> None:
    if stored.resource["status"] == "cancelled":
        raise GoogleError(410, "deleted", "Resource has been deleted")
    stored.fields["status"] = "cancelled"
    stored.resource = {
        **stored.resource,
        "status": "cancelled",
        "etag": new_etag(emulator),
        "updated": rfc3339(emulator.clock.now()),
    }
    calendar.seq += 1
    stored.changed = calendar.seq


def new_fields(
    body: dict[str, Any],
    conference_version: int,
    existing: dict[str, Any] | None,
    outcome: str = "success",
) -> dict[str, Any]:
    fields = clean_fields(body)
    if conference_version >= 1 and "conferenceData" in body:
        fields["conferenceData"] = conference_for(body["conferenceData"], existing, outcome)
    elif existing is not None:
        fields["conferenceData"] = existing
    return fields


def event_id_for(body: dict[str, Any], calendar: CalendarData) -> str:
    if "id" not in body or body["id"] is None:
        while True:
            event_id = "".join(
                secrets.choice("abcdefghijklmnopqrstuv0123456789") for _ in range(26)
            )
            if event_id not in calendar.events:
                return event_id
    event_id = body["id"]
    if not isinstance(event_id, str) or not EVENT_ID.match(event_id):
        raise bad_request("Invalid resource id value.")
    if event_id in calendar.events:
        raise GoogleError(409, "duplicate", "The requested identifier already exists.")
    return event_id


# ---------------------------------------------------------------------------------------------
# Invitations: attendees who are users of the emulator hold a copy of the organizer's event


def is_user(emulator: Emulator, state: CalendarState, email: str) -> bool:
    """Whether ``email`` is a Google account here (signed in once, or has calendars)."""
    return email in oauth_state(emulator).users or email in state.user_calendars


def invite_attendees(emulator: Emulator, state: CalendarState, calendar: CalendarData,
                     event_id: str) -> None:  # fmt: skip
    """As Google does after the organizer writes an event: every attendee who is a user gets a
    copy in their primary calendar (the same id and iCalUID), kept in step with the organizer's,
    and cancelled when they are no longer invited or the event is cancelled. A copy its attendee
    deleted is not put back. Writes to an attendee's copy change only that copy."""
    stored = calendar.events[event_id]
    resource = stored.resource
    organizer = resource["organizer"]["email"]
    if organizer != calendar.id:
        return
    invited = {
        attendee["email"]
        for attendee in resource.get("attendees", [])
        if attendee["email"] != organizer and is_user(emulator, state, attendee["email"])
    }
    if resource["status"] == "cancelled":
        invited = set()
    for email in sorted(invited | stored.invited):
        attendee_calendar = state.calendars[ensure_user(state, email)[0]]
        copy = attendee_calendar.events.get(event_id)
        if copy is not None and copy.resource["iCalUID"] != resource["iCalUID"]:
            continue  # that calendar holds another event under this id
        if email in invited and email not in stored.removed_by:
            write_event(
                emulator,
                attendee_calendar,
                event_id,
                copy_fields(stored.fields, copy),
                creator=resource["creator"]["email"],
                organizer=organizer,
                ical_uid=resource["iCalUID"],
            )
            stored.invited.add(email)
        elif copy is not None and copy.resource["status"] != "cancelled":
            cancel_event(emulator, attendee_calendar, copy)
        else:
            continue
        notify_change(state, emulator, attendee_calendar.id)


# An attendee's own settings on their copy, which the organizer's writes leave alone.
PERSONAL_FIELDS = ("reminders", "colorId")
# What an attendee's own entry in ``attendees`` may change: their reply.
REPLY_FIELDS = ("responseStatus", "comment", "additionalGuests")


def copy_fields(organizer_fields: dict[str, Any], copy: StoredEvent | None) -> dict[str, Any]:
    """The organizer's event as an attendee's copy: shared fields from the organizer, the
    attendee's own reminders, colour and private extended properties kept (a new copy starts
    with none of them)."""
    fields = dict(organizer_fields)
    own = copy.fields if copy is not None and copy.resource["status"] != "cancelled" else {}
    for name in PERSONAL_FIELDS:
        fields[name] = own.get(name)
    private = (own.get("extendedProperties") or {}).get("private")
    shared = (organizer_fields.get("extendedProperties") or {}).get("shared")
    properties = {k: v for k, v in (("private", private), ("shared", shared)) if v}
    fields["extendedProperties"] = properties or None
    return fields


def without_reply(attendees: list[dict[str, Any]] | None, email: str) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in a.items() if k not in REPLY_FIELDS} if a["email"] == email else a
        for a in attendees or []
    ]


def check_attendee_write(email: str, stored_fields: dict[str, Any], fields: dict[str, Any]) -> None:
    """An attendee writing their copy may change only their own: their reply in ``attendees``,
    reminders, colour and private extended properties. Anything shared answers Google's 403."""
    old = {k: v for k, v in stored_fields.items() if v is not None}
    new = {k: v for k, v in fields.items() if v is not None}
    for name in sorted(set(old) | set(new)):
        if name in PERSONAL_FIELDS:
            continue
        if name == "extendedProperties":
            same = (old.get(name) or {}).get("shared") == (new.get(name) or {}).get("shared")
        elif name == "attendees":
            same = without_reply(old.get(name), email) == without_reply(new.get(name), email)
        else:
            same = old.get(name) == new.get(name)
        if not same:
            raise GoogleError(
                403,
                "forbiddenForNonOrganizer",
                "Shared properties can only be changed by the organizer of the event.",
                domain="calendar",
            )


def forward_reply(
    emulator: Emulator, state: CalendarState, calendar: CalendarData, event_id: str
) -> None:
    """An attendee's reply reaches the organizer's event (and from it every other copy), when
    the organizer is a user here."""
    copy = calendar.events[event_id]
    mine = next((a for a in copy.fields.get("attendees") or [] if a["email"] == calendar.id), None)
    organizer = copy.resource["organizer"]["email"]
    original_calendar = state.calendars.get(organizer)
    if mine is None or original_calendar is None:
        return
    original = original_calendar.events.get(event_id)
    if original is None or original.resource["iCalUID"] != copy.resource["iCalUID"]:
        return
    attendees = [
        {
            **{k: v for k, v in a.items() if k not in REPLY_FIELDS},
            **{k: mine[k] for k in REPLY_FIELDS if k in mine},
        }
        if a["email"] == calendar.id
        else a
        for a in original.fields.get("attendees") or []
    ]
    if attendees == original.fields.get("attendees"):
        return
    write_event(
        emulator,
        original_calendar,
        event_id,
        {**original.fields, "attendees": attendees},
        creator=original.resource["creator"]["email"],
        organizer=organizer,
    )
    notify_change(state, emulator, original_calendar.id)
    invite_attendees(emulator, state, original_calendar, event_id)


def removed_by_attendee(state: CalendarState, calendar: CalendarData, stored: StoredEvent) -> None:
    """An attendee deleted their copy: the organizer's event stops putting it back."""
    organizer = stored.resource["organizer"]["email"]
    if organizer == calendar.id or organizer not in state.calendars:
        return
    original = state.calendars[organizer].events.get(stored.resource["id"])
    if original is not None and original.resource["iCalUID"] == stored.resource["iCalUID"]:
        original.removed_by.add(calendar.owner)


# ---------------------------------------------------------------------------------------------
# Guest notifications (the e-mails Google sends for ``sendUpdates``)

SEND_UPDATES = ("all", "externalOnly", "none")


def send_updates_of(request: Request) -> str:
    """``sendUpdates`` (default ``none``, as Google's; the deprecated ``sendNotifications=true``
    means ``all``)."""
    value = request.query_params.get("sendUpdates")
    if value is None:
        return "all" if query_bool(request, "sendNotifications") else "none"
    if value not in SEND_UPDATES:
        raise bad_request("Invalid value for: sendUpdates")
    return value


def guests(resource: dict[str, Any] | None) -> set[str]:
    """Who Google notifies about an event: its attendees other than the organizer."""
    if resource is None or resource["status"] == "cancelled":
        return set()
    organizer = resource["organizer"]["email"]
    return {a["email"] for a in resource.get("attendees", []) if a["email"] != organizer}


def notify_guests(
    emulator: Emulator,
    state: CalendarState,
    calendar: CalendarData,
    before: dict[str, Any] | None,
    after: dict[str, Any],
    send_updates: str,
) -> None:
    """Record the e-mails Google sends after the organizer's write: an invitation to each new
    guest, an update to each guest still invited, a cancellation to each guest dropped or when
    the event is cancelled. ``externalOnly`` leaves out guests who are Google Calendar users;
    an attendee's write to their own copy sends none of these."""
    if send_updates == "none" or after["organizer"]["email"] != calendar.id:
        return
    was, now = guests(before), guests(after)
    kinds = {
        **dict.fromkeys(was - now, "cancellation"),
        **dict.fromkeys(now - was, "invitation"),
        **dict.fromkeys(now & was, "update"),
    }
    for recipient in sorted(kinds):
        if send_updates == "externalOnly" and is_user(emulator, state, recipient):
            continue
        state.notifications.append(
            {
                "calendar_id": calendar.id,
                "event_id": after["id"],
                "ical_uid": after["iCalUID"],
                "sender": calendar.id,
                "recipient": recipient,
                "kind": kinds[recipient],
                "summary": after.get("summary"),
                "send_updates": send_updates,
                "sent_at": rfc3339(emulator.clock.now()),
            }
        )


# ---------------------------------------------------------------------------------------------
# Push notifications


def notify_change(state: CalendarState, emulator: Emulator, calendar_id: str) -> None:
    now = emulator.clock.now()
    for channel in state.channels.values():
        if channel.watched.get("calendar_id") == calendar_id and channel.live(now):
            state.deliveries.send(channel, "exists")


# ---------------------------------------------------------------------------------------------
# Calendar list


def calendar_list_entry(calendar: CalendarData) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "kind": "calendar#calendarListEntry",
        "etag": f'"{calendar.seq}{calendar.epoch}"',
        "id": calendar.id,
        "summary": calendar.summary,
        "timeZone": "UTC",
        "accessRole": "owner",
        "selected": True,
        "defaultReminders": [],
    }
    if calendar.primary:
        entry["primary"] = True
    return entry


@router.get("/calendar/v3/users/me/calendarList")
async def calendar_list_list(request: Request) -> dict[str, Any]:
    emulator, email = await begin(request, "calendar.calendarList.list")
    state = state_of(emulator)
    items = [calendar_list_entry(state.calendars[cid]) for cid in ensure_user(state, email)]
    return {"kind": "calendar#calendarList", "etag": f'"{len(items)}"', "items": items}


@router.get("/calendar/v3/users/me/calendarList/{calendarId}")
async def calendar_list_get(request: Request, calendarId: str) -> dict[str, Any]:
    emulator, email = await begin(request, "calendar.calendarList.get")
    return calendar_list_entry(calendar_for(state_of(emulator), email, calendarId))


# ---------------------------------------------------------------------------------------------
# Events


def matches_query(resource: dict[str, Any], query: str) -> bool:
    haystack = " ".join(
        [
            str(resource.get("summary", "")),
            str(resource.get("description", "")),
            str(resource.get("location", "")),
            *(f"{a['email']} {a.get('displayName', '')}" for a in resource.get("attendees", [])),
        ]
    ).lower()
    return all(term in haystack for term in query.lower().split())


def list_items(
    calendar: CalendarData,
    *,
    since: int | None,
    window_start: datetime | None,
    window_end: datetime | None,
    query: str | None,
    show_deleted: bool,
    single_events: bool,
    order_by: str | None,
) -> list[dict[str, Any]]:
    stored = sorted(
        calendar.events.values(), key=lambda s: s.changed if since is not None else s.order
    )
    items: list[dict[str, Any]] = []
    for event in stored:
        resource = event.resource
        if since is not None:
            if event.changed <= since:
                continue
        else:
            # Google lists a series' cancelled instances with the series, unless expanded.
            exception = bool(resource.get("recurringEventId")) and not single_events
            if resource["status"] == "cancelled" and not (show_deleted or exception):
                continue
            if query and not matches_query(resource, query):
                continue
            if not overlaps(resource, window_start, window_end):
                continue
        if single_events and resource.get("recurrence") and resource["status"] != "cancelled":
            # Instances changed or cancelled on their own are listed as their exceptions.
            items.extend(
                instance
                for instance in expand(resource, window_start, window_end)
                if instance["id"] not in calendar.events
            )
        else:
            items.append(resource)
    if order_by == "startTime":
        items.sort(key=lambda r: event_times(r)[0].utc())
    elif order_by == "updated":
        items.sort(key=lambda r: r["updated"])
    return items


@router.get("/calendar/v3/calendars/{calendarId}/events")
async def events_list(request: Request, calendarId: str) -> dict[str, Any]:
    emulator, email = await begin(request, "calendar.events.list")
    calendar = calendar_for(state_of(emulator), email, calendarId)
    params = request.query_params
    page_size = min(query_int(request, "maxResults", DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
    if page_size < 1:
        raise bad_request("Invalid value for: maxResults")
    single_events = query_bool(request, "singleEvents")
    show_deleted = query_bool(request, "showDeleted")
    order_by = params.get("orderBy")
    if order_by not in (None, "startTime", "updated"):
        raise bad_request("Invalid value for: orderBy")
    if order_by == "startTime" and not single_events:
        raise bad_request("The requested ordering is not available for the particular query.")
    window_start = parse_timestamp(params["timeMin"], "timeMin") if "timeMin" in params else None
    window_end = parse_timestamp(params["timeMax"], "timeMax") if "timeMax" in params else None
    if window_start and window_end and window_end <= window_start:
        raise GoogleError(400, "timeRangeEmpty", "The specified time range is empty.")

    since: int | None = None
    sync_token = params.get("syncToken")
    if sync_token is not None:
        if SYNC_TOKEN_CONFLICTS & set(params):
            raise bad_request(
                "Sync token cannot be used with " + ", ".join(sorted(SYNC_TOKEN_CONFLICTS)) + "."
            )
        if params.get("showDeleted", "").lower() == "false":
            raise bad_request("Sync token cannot be used with showDeleted set to false.")
        payload = decode_token(sync_token)
        if (
            payload is None
            or payload.get("c") != calendar.id
            or payload.get("e") != calendar.epoch
            or not isinstance(payload.get("s"), int)
            or payload["s"] > calendar.seq
        ):
            raise GoogleError(
                410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required."
            )
        since = payload["s"]

    def snapshot() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        items = list_items(
            calendar,
            since=since,
            window_start=window_start,
            window_end=window_end,
            query=params.get("q"),
            show_deleted=show_deleted or since is not None,
            single_events=single_events,
            order_by=order_by,
        )
        return items, {"seq": calendar.seq, "epoch": calendar.epoch}

    page = paged(emulator, request, f"calendar:{calendar.id}", page_size, snapshot)
    response: dict[str, Any] = {
        "kind": "calendar#events",
        "etag": f'"{calendar.seq}{calendar.epoch}"',
        "summary": calendar.summary,
        "updated": rfc3339(emulator.clock.now()),
        "timeZone": "UTC",
        "accessRole": "owner",
        "defaultReminders": [],
        "items": list(page.items),
    }
    if page.next_page_token is not None:
        response["nextPageToken"] = page.next_page_token
    else:
        # Changes after the listing's snapshot are the next sync's.
        response["nextSyncToken"] = encode_token(
            {"c": calendar.id, "e": page.extra["epoch"], "s": page.extra["seq"]}
        )
    return response


def find_event(calendar: CalendarData, event_id: str) -> dict[str, Any]:
    stored = calendar.events.get(event_id)
    if stored is not None:
        return stored.resource
    instance = virtual_instance(calendar, event_id)
    if instance is None:
        raise GoogleError(404, "notFound", "Not Found")
    return instance


def virtual_instance(calendar: CalendarData, event_id: str) -> dict[str, Any] | None:
    """An instance of a live series, not changed on its own, as Google serves it."""
    master_id, _, _ = event_id.rpartition("_")
    master = calendar.events.get(master_id)
    if master is None or not master.resource.get("recurrence"):
        return None
    if master.resource["status"] == "cancelled":
        return None
    for instance in expand(master.resource, None, None):
        if instance["id"] == event_id:
            return instance
    return None


def writable_event(emulator: Emulator, calendar: CalendarData, event_id: str) -> StoredEvent:
    """The stored event to change; an instance of a series becomes an exception of its own
    (the series' fields, its own times, ``recurringEventId`` and ``originalStartTime``), as
    Google makes one when a single instance is changed or cancelled."""
    if event_id in calendar.events:
        return stored_event(calendar, event_id)
    instance = virtual_instance(calendar, event_id)
    if instance is None:
        raise GoogleError(404, "notFound", "Not Found")
    master = calendar.events[instance["recurringEventId"]]
    fields = {k: v for k, v in master.fields.items() if k != "recurrence"}
    fields.update({name: instance[name] for name in ("start", "end", *INSTANCE_FIELDS)})
    stored = StoredEvent(fields, instance, emulator.next_number(), calendar.seq)
    stored.invited, stored.removed_by = set(master.invited), set(master.removed_by)
    calendar.events[event_id] = stored
    return stored


@router.get("/calendar/v3/calendars/{calendarId}/events/{eventId}")
async def events_get(request: Request, calendarId: str, eventId: str) -> dict[str, Any]:
    emulator, email = await begin(request, "calendar.events.get")
    return find_event(calendar_for(state_of(emulator), email, calendarId), eventId)


@router.get("/calendar/v3/calendars/{calendarId}/events/{eventId}/instances")
async def events_instances(request: Request, calendarId: str, eventId: str) -> dict[str, Any]:
    """A series' instances in order: each as expanded from its rule, or as its exception when
    changed on its own (a cancelled one only with ``showDeleted``). ``originalStart`` picks the
    instance that was originally at that time."""
    emulator, email = await begin(request, "calendar.events.instances")
    calendar = calendar_for(state_of(emulator), email, calendarId)
    master = stored_event(calendar, eventId)
    if not master.resource.get("recurrence"):
        raise bad_request("The event is not a recurring event.")
    if master.resource["status"] == "cancelled":
        raise GoogleError(410, "deleted", "Resource has been deleted")
    params = request.query_params
    page_size = min(query_int(request, "maxResults", DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
    if page_size < 1:
        raise bad_request("Invalid value for: maxResults")
    show_deleted = query_bool(request, "showDeleted")
    window_start = parse_timestamp(params["timeMin"], "timeMin") if "timeMin" in params else None
    window_end = parse_timestamp(params["timeMax"], "timeMax") if "timeMax" in params else None
    original = (
        parse_event_time(original_start_param(params["originalStart"]), "originalStart").utc()
        if "originalStart" in params
        else None
    )

    def snapshot() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        items = []
        for instance in expand(master.resource, window_start, window_end):
            if original is not None and event_times(instance)[0].utc() != original:
                continue
            exception = calendar.events.get(instance["id"])
            resource = exception.resource if exception is not None else instance
            if resource["status"] == "cancelled" and not show_deleted:
                continue
            items.append(resource)
        return items, {}

    page = paged(emulator, request, f"calendar:{calendar.id}:{eventId}", page_size, snapshot)
    response: dict[str, Any] = {
        "kind": "calendar#events",
        "etag": f'"{calendar.seq}{calendar.epoch}"',
        "summary": calendar.summary,
        "updated": rfc3339(emulator.clock.now()),
        "timeZone": "UTC",
        "accessRole": "owner",
        "defaultReminders": [],
        "items": list(page.items),
    }
    if page.next_page_token is not None:
        response["nextPageToken"] = page.next_page_token
    return response


def original_start_param(value: str) -> dict[str, str]:
    """``originalStart``: an instance's original start, a date-time or (all-day) a date."""
    return {"date": value} if len(value) == 10 else {"dateTime": value}


@router.post("/calendar/v3/calendars/{calendarId}/events")
async def events_insert(request: Request, calendarId: str) -> dict[str, Any]:
    emulator, email = await begin(request, "calendar.events.insert")
    state = state_of(emulator)
    calendar = calendar_for(state, email, calendarId)
    body = await json_body(request)
    send_updates = send_updates_of(request)
    event_id = event_id_for(body, calendar)
    fields = new_fields(
        body,
        query_int(request, "conferenceDataVersion", 0),
        None,
        state.conference_outcomes.get(email, "success"),
    )
    resource = write_event(
        emulator, calendar, event_id, fields, creator=email, organizer=calendar.id
    )
    notify_change(state, emulator, calendar.id)
    invite_attendees(emulator, state, calendar, event_id)
    notify_guests(emulator, state, calendar, None, resource, send_updates)
    return resource


async def modify(
    request: Request, calendar_id: str, event_id: str, *, patch: bool
) -> dict[str, Any]:
    method = "calendar.events.patch" if patch else "calendar.events.update"
    emulator, email = await begin(request, method)
    state = state_of(emulator)
    calendar = calendar_for(state, email, calendar_id)
    stored = writable_event(emulator, calendar, event_id)
    body = await json_body(request)
    send_updates = send_updates_of(request)
    before = stored.resource
    changes = new_fields(
        body,
        query_int(request, "conferenceDataVersion", 0),
        stored.fields.get("conferenceData"),
        state.conference_outcomes.get(email, "success"),
    )
    if stored.fields.get("recurringEventId") and changes.get("recurrence"):
        raise bad_request("An instance of a recurring event cannot have a recurrence.")
    changes.update({name: stored.fields[name] for name in INSTANCE_FIELDS if name in stored.fields})
    if patch:
        fields = {**stored.fields, **changes}
    else:
        keep = ("conferenceData",) if "conferenceData" not in changes else ()
        fields = {**{k: stored.fields[k] for k in keep if k in stored.fields}, **changes}
    organizer = stored.resource["organizer"]["email"]
    if organizer != calendar.id:
        check_attendee_write(calendar.id, stored.fields, fields)
    resource = write_event(
        emulator,
        calendar,
        event_id,
        fields,
        creator=stored.resource["creator"]["email"],
        organizer=organizer,
    )
    notify_change(state, emulator, calendar.id)
    if organizer != calendar.id:
        forward_reply(emulator, state, calendar, event_id)
        return calendar.events[event_id].resource
    invite_attendees(emulator, state, calendar, event_id)
    notify_guests(emulator, state, calendar, before, resource, send_updates)
    return resource


@router.patch("/calendar/v3/calendars/{calendarId}/events/{eventId}")
async def events_patch(request: Request, calendarId: str, eventId: str) -> dict[str, Any]:
    return await modify(request, calendarId, eventId, patch=True)


@router.put("/calendar/v3/calendars/{calendarId}/events/{eventId}")
async def events_update(request: Request, calendarId: str, eventId: str) -> dict[str, Any]:
    return await modify(request, calendarId, eventId, patch=False)


@router.delete("/calendar/v3/calendars/{calendarId}/events/{eventId}", status_code=204)
async def events_delete(request: Request, calendarId: str, eventId: str) -> Response:
    emulator, email = await begin(request, "calendar.events.delete")
    state = state_of(emulator)
    calendar = calendar_for(state, email, calendarId)
    cancel(emulator, state, calendar, eventId, send_updates=send_updates_of(request))
    return Response(status_code=204)


def cancel(
    emulator: Emulator,
    state: CalendarState,
    calendar: CalendarData,
    event_id: str,
    *,
    send_updates: str = "none",
) -> None:
    """Delete an event: the organizer's cancels every copy, an attendee's only their own. An
    instance of a series is cancelled alone (an exception); a series with its exceptions."""
    stored = writable_event(emulator, calendar, event_id)
    before = stored.resource
    cancel_event(emulator, calendar, stored)
    if stored.resource.get("recurrence"):
        for other in list(calendar.events.values()):
            exception = other.resource
            if exception.get("recurringEventId") == event_id and exception["status"] != "cancelled":
                cancel_event(emulator, calendar, other)
    notify_guests(emulator, state, calendar, before, stored.resource, send_updates)
    notify_change(state, emulator, calendar.id)
    removed_by_attendee(state, calendar, stored)
    invite_attendees(emulator, state, calendar, event_id)


@router.post("/calendar/v3/calendars/{calendarId}/events/{eventId}/move")
async def events_move(request: Request, calendarId: str, eventId: str) -> dict[str, Any]:
    emulator, email = await begin(request, "calendar.events.move")
    state = state_of(emulator)
    source = calendar_for(state, email, calendarId)
    destination_id = request.query_params.get("destination")
    if not destination_id:
        raise bad_request("Missing destination.", "required")
    destination = calendar_for(state, email, destination_id)
    stored = stored_event(source, eventId)
    if stored.resource["status"] == "cancelled":
        raise GoogleError(410, "deleted", "Resource has been deleted")
    if destination.id == source.id:
        return stored.resource
    if eventId in destination.events:
        raise GoogleError(409, "duplicate", "The requested identifier already exists.")
    fields = dict(stored.fields)
    creator = stored.resource["creator"]["email"]
    organizer = stored.resource["organizer"]["email"]
    new_organizer = destination.id if organizer == source.id else organizer
    cancel_event(emulator, source, stored)
    resource = write_event(
        emulator, destination, eventId, fields, creator=creator, organizer=new_organizer
    )
    notify_change(state, emulator, source.id)
    notify_change(state, emulator, destination.id)
    invite_attendees(emulator, state, destination, eventId)
    return resource


# ---------------------------------------------------------------------------------------------
# Free/busy


def busy_periods(
    calendar: CalendarData, window_start: datetime, window_end: datetime
) -> list[dict[str, str]]:
    periods: list[tuple[datetime, datetime]] = []
    for stored in calendar.events.values():
        resource = stored.resource
        if resource["status"] == "cancelled" or resource.get("transparency") == "transparent":
            continue
        if any(
            a.get("self") and a["responseStatus"] == "declined"
            for a in resource.get("attendees", [])
        ):
            continue
        for instance in expand(resource, window_start, window_end):
            if instance is not resource and instance["id"] in calendar.events:
                continue  # an exception, counted as itself
            start, end = event_times(instance)
            begins, ends = max(start.utc(), window_start), min(end.utc(), window_end)
            if begins < ends:
                periods.append((begins, ends))
    merged: list[list[datetime]] = []
    for begins, ends in sorted(periods):
        if merged and begins <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], ends)
        else:
            merged.append([begins, ends])
    return [{"start": rfc3339(b), "end": rfc3339(e)} for b, e in merged]


@router.post("/calendar/v3/freeBusy")
async def freebusy_query(request: Request) -> dict[str, Any]:
    emulator, email = await begin(request, "calendar.freebusy.query")
    state = state_of(emulator)
    ensure_user(state, email)
    body = await json_body(request)
    if "timeMin" not in body or "timeMax" not in body:
        raise bad_request("Missing timeMin or timeMax.", "required")
    window_start = parse_timestamp(body["timeMin"], "timeMin")
    window_end = parse_timestamp(body["timeMax"], "timeMax")
    if window_end <= window_start:
        raise GoogleError(400, "timeRangeEmpty", "The specified time range is empty.")
    items = body.get("items") or []
    require(isinstance(items, list), "items", items)
    calendars: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise bad_request("Invalid value for: items")
        calendar_id = item["id"]
        wanted = email if calendar_id == "primary" else calendar_id
        calendar = state.calendars.get(wanted) or state.calendars.get(wanted.lower())
        if calendar is None:
            calendars[calendar_id] = {
                "errors": [{"domain": "global", "reason": "notFound"}],
                "busy": [],
            }
        else:
            calendars[calendar_id] = {"busy": busy_periods(calendar, window_start, window_end)}
    return {
        "kind": "calendar#freeBusy",
        "timeMin": rfc3339(window_start),
        "timeMax": rfc3339(window_end),
        "calendars": calendars,
    }


# ---------------------------------------------------------------------------------------------
# Push channels


@router.post("/calendar/v3/calendars/{calendarId}/events/watch")
async def events_watch(request: Request, calendarId: str) -> dict[str, Any]:
    emulator, email = await begin(request, "calendar.events.watch")
    state = state_of(emulator)
    calendar = calendar_for(state, email, calendarId)
    body = await json_body(request)
    now = emulator.clock.now()
    default_ttl = DEFAULT_CHANNEL_TTL
    params = body.get("params") or {}
    if isinstance(params, dict) and params.get("ttl") is not None:
        try:
            default_ttl = timedelta(seconds=int(params["ttl"]))
        except (TypeError, ValueError) as exc:
            raise bad_request("Invalid value for: params.ttl") from exc
    base = str(request.base_url).rstrip("/")
    channel = open_channel(
        body,
        existing=state.channels,
        owner=email,
        resource_uri=f"{base}/calendar/v3/calendars/{quote(calendar.id, safe='')}/events?alt=json",
        now=now,
        default_ttl=default_ttl,
        max_ttl=None,
    )
    channel.watched["calendar_id"] = calendar.id
    state.channels[channel.id] = channel
    state.deliveries.send(channel, "sync")
    return channel.answer()


@router.post("/calendar/v3/channels/stop", status_code=204)
async def channels_stop(request: Request) -> Response:
    emulator, email = await begin(request, "calendar.channels.stop")
    state = state_of(emulator)
    stop_channel(await json_body(request), state.channels, email)
    return Response(status_code=204)


# ---------------------------------------------------------------------------------------------
# Seed and admin routes (no auth: the emulator's own control surface)


def seed_calendar(request: Request, email: str) -> tuple[Emulator, CalendarState, CalendarData]:
    emulator = emulator_of(request)
    state = state_of(emulator)
    calendar = calendar_for(state, email, request.query_params.get("calendarId", "primary"))
    return emulator, state, calendar


@router.get("/_emulator/calendar/deliveries")
async def seed_deliveries(request: Request) -> dict[str, Any]:
    return {"deliveries": list(state_of(emulator_of(request)).deliveries.records)}


@router.get("/_emulator/calendar/notifications")
async def seed_notifications(request: Request) -> dict[str, Any]:
    """The guest e-mails sent so far (``sendUpdates``), optionally for one ``recipient`` or
    ``event_id``."""
    params = request.query_params
    recipient, event_id = params.get("recipient"), params.get("event_id")
    return {
        "notifications": [
            sent
            for sent in state_of(emulator_of(request)).notifications
            if (recipient is None or sent["recipient"] == recipient.lower())
            and (event_id is None or sent["event_id"] == event_id)
        ]
    }


@router.get("/_emulator/calendar/channels")
async def seed_channels(request: Request) -> dict[str, Any]:
    """Every push channel opened so far, with its expiry (on the emulator's clock)."""
    emulator = emulator_of(request)
    now = emulator.clock.now()
    return {
        "channels": [
            {
                "id": channel.id,
                "resource_id": channel.resource_id,
                "calendar_id": channel.watched["calendar_id"],
                "owner": channel.owner,
                "address": channel.address,
                "expiration": rfc3339(channel.expiration),
                "stopped": channel.stopped,
                "expired": channel.expiration <= now,
            }
            for channel in state_of(emulator).channels.values()
        ]
    }


@router.post("/_emulator/calendar/{email}/events")
async def seed_insert(request: Request, email: str) -> dict[str, Any]:
    """Put an event into ``email``'s calendar as if ``as`` (another user) had invited them."""
    emulator, state, calendar = seed_calendar(request, email)
    body = await json_body(request)
    author = str(body.get("as") or calendar.id).lower()
    event_id = event_id_for(body, calendar)
    fields = new_fields(body, 1, None)
    if author != calendar.id:
        attendees = list(fields.get("attendees") or [])
        if all(a["email"] != calendar.id for a in attendees):
            attendees.append({"email": calendar.id, "responseStatus": "needsAction"})
        if all(a["email"] != author for a in attendees):
            attendees.insert(0, {"email": author, "responseStatus": "accepted"})
        fields["attendees"] = attendees
    resource = write_event(emulator, calendar, event_id, fields, creator=author, organizer=author)
    notify_change(state, emulator, calendar.id)
    invite_attendees(emulator, state, calendar, event_id)
    return resource


@router.patch("/_emulator/calendar/{email}/events/{eventId}")
async def seed_patch(request: Request, email: str, eventId: str) -> dict[str, Any]:
    emulator, state, calendar = seed_calendar(request, email)
    stored = writable_event(emulator, calendar, eventId)
    body = await json_body(request)
    changes = new_fields(body, 1, stored.fields.get("conferenceData"))
    resource = write_event(
        emulator,
        calendar,
        eventId,
        {**stored.fields, **changes},
        creator=stored.resource["creator"]["email"],
        organizer=stored.resource["organizer"]["email"],
    )
    notify_change(state, emulator, calendar.id)
    invite_attendees(emulator, state, calendar, eventId)
    return resource


@router.delete("/_emulator/calendar/{email}/events/{eventId}", status_code=204)
async def seed_delete(request: Request, email: str, eventId: str) -> Response:
    emulator, state, calendar = seed_calendar(request, email)
    cancel(emulator, state, calendar, eventId)
    return Response(status_code=204)


@router.post("/_emulator/calendar/{email}/conferences")
async def seed_conference_outcome(request: Request, email: str) -> dict[str, Any]:
    """How the user's next Meet create requests are answered: ``success`` at once (the
    default), ``pending`` (until settled below) or ``failure`` (Meet turned off)."""
    state = state_of(emulator_of(request))
    body = await json_body(request)
    outcome = body.get("outcome")
    if outcome not in CONFERENCE_OUTCOMES:
        raise bad_request("outcome must be success, pending or failure.", "required")
    ensure_user(state, email)
    state.conference_outcomes[email.lower()] = outcome
    return {"outcome": outcome}


@router.post("/_emulator/calendar/{email}/conferences/settle")
async def seed_settle_conferences(request: Request, email: str) -> dict[str, Any]:
    """Settle every pending Meet create request of the user's calendars with ``outcome``
    (``success``: a link; ``failure``), as Google does later: each event changes (new ETag,
    ``updated``), its copies follow and channels are notified."""
    emulator = emulator_of(request)
    state = state_of(emulator)
    body = await json_body(request)
    outcome = body.get("outcome")
    if outcome not in ("success", "failure"):
        raise bad_request("outcome must be success or failure.", "required")
    settled: list[str] = []
    for calendar_id in list(ensure_user(state, email)):
        calendar = state.calendars[calendar_id]
        for event_id, stored in list(calendar.events.items()):
            request_id = pending_request(stored.fields.get("conferenceData"))
            if request_id is None or stored.resource["organizer"]["email"] != calendar.id:
                continue
            conference = (
                meet_conference(request_id)
                if outcome == "success"
                else unsettled_conference(request_id, "failure")
            )
            write_event(
                emulator,
                calendar,
                event_id,
                {**stored.fields, "conferenceData": conference},
                creator=stored.resource["creator"]["email"],
                organizer=calendar.id,
            )
            notify_change(state, emulator, calendar.id)
            invite_attendees(emulator, state, calendar, event_id)
            settled.append(event_id)
    return {"settled": settled}


@router.post("/_emulator/calendar/{email}/invalidate-sync-tokens")
async def seed_invalidate(request: Request, email: str) -> dict[str, Any]:
    state = state_of(emulator_of(request))
    ids = ensure_user(state, email)
    for calendar_id in ids:
        state.calendars[calendar_id].epoch += 1
    return {"invalidated": list(ids)}


@router.post("/_emulator/calendar/{email}/calendars")
async def seed_calendar_create(request: Request, email: str) -> dict[str, Any]:
    state = state_of(emulator_of(request))
    ids = ensure_user(state, email)
    body = await json_body(request)
    summary = body.get("summary")
    if not isinstance(summary, str) or not summary:
        raise bad_request("Missing summary.", "required")
    calendar_id = body.get("id") or f"{secrets.token_hex(12)}@group.calendar.google.com"
    if not isinstance(calendar_id, str) or calendar_id in state.calendars:
        raise GoogleError(409, "duplicate", "The requested identifier already exists.")
    state.calendars[calendar_id] = CalendarData(calendar_id, email.lower(), summary, primary=False)
    ids.append(calendar_id)
    return calendar_list_entry(state.calendars[calendar_id])
