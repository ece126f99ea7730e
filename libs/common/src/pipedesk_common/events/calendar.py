"""Events the calendar service publishes (routing keys ``calendar.*``).

One event per change of a mirrored Google Calendar event, whether made through PipeDesk's API or
found by sync (another attendee moved the meeting): ``created`` when PipeDesk first sees it,
``updated`` on every later change, ``cancelled`` when it is cancelled or deleted, ``removed``
when PipeDesk stops keeping it (the org's retention) while it may still be in the calendar. A
series is one event; an occurrence changed or cancelled on its own is an event of its own.
"""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from pipedesk_common.events.envelope import VersionedData, contract
from pipedesk_common.events.sync import SyncStateChanged
from pipedesk_common.events.timeline import Link, TimelineProjection


class CalendarEventSnapshot(VersionedData):
    """A mirrored calendar event after the change (``id`` and ``version`` identify it)."""

    org_id: str
    owner_id: str = Field(description="The PipeDesk user whose calendar holds the event")
    calendar_id: str = Field(description="Google's id of the calendar")
    google_id: str = Field(description="Google's id of the event")
    status: str = Field(description="confirmed, tentative or cancelled")
    summary: str | None
    start: AwareDatetime | None = Field(description="The start; midnight UTC for all-day events")
    end: AwareDatetime | None
    all_day: bool
    time_zone: str | None
    attendees: list[str] = Field(description="Attendees' emails, lower case")
    organizer: str | None
    hangout_link: str | None = Field(description="The Google Meet link, if any")
    conference_status: str | None = Field(
        None,
        description="The Meet asked for: pending (Google is still creating it), success "
        "(hangout_link is set) or failure; null when none was asked for",
    )
    html_link: str | None
    visibility: str = Field(description="default, public, private or confidential")
    recurrence: list[str] = Field(
        default_factory=list, description="A series' rule (RFC 5545 lines); empty otherwise"
    )
    recurring_event_id: str | None = Field(
        None,
        description="On an occurrence of a series changed or cancelled on its own: Google's id "
        "of the series",
    )
    original_start: AwareDatetime | None = Field(
        None, description="On such an occurrence: when it was due before it was changed"
    )
    links: list[Link] = Field(description="The CRM records the event belongs to")
    timeline: TimelineProjection


@contract("calendar", "event", "created")
class CalendarEventCreated(CalendarEventSnapshot):
    """An event was created through PipeDesk, or found in a user's calendar by sync."""


@contract("calendar", "event", "updated")
class CalendarEventUpdated(CalendarEventSnapshot):
    """A mirrored event changed (in PipeDesk or in Google)."""


@contract("calendar", "event", "cancelled")
class CalendarEventCancelled(CalendarEventSnapshot):
    """A mirrored event was cancelled or deleted."""


@contract("calendar", "event", "removed")
class CalendarEventRemoved(CalendarEventSnapshot):
    """A mirrored event left PipeDesk under the org's retention, or when its calendar's owner
    disconnected Google Calendar under the org's ``remove`` rule: its timeline copy is
    ``removed`` (its holder dropped it), and the item leaves every timeline once no other
    calendar holds it."""


@contract("calendar", "sync", "state_changed")
class CalendarSyncStateChanged(SyncStateChanged):
    """The calendar service's sync of a user's Google Calendar changed state."""
