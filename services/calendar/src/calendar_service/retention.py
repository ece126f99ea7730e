"""The org's calendar settings: its retention of mirrored events, and its rule for a disconnected
account's events.

An org may limit how long a mirrored event is kept (``retention_days``, set by an admin). The
``calendar.retention`` job (the kit's ``retention_job``) removes the events that ended longer ago
than that: each copy is announced ``calendar.event.removed`` (timeline status ``removed``, as
Gmail's retention removes mail), so the timeline drops it, and a meeting no other calendar holds
leaves every timeline; then the event leaves the mirror with its links. A series with a
recurrence rule is kept while it is in the calendar (its occurrences may go on); an occurrence
changed or cancelled on its own follows its own end.

When a user disconnects Google Calendar (or Google revokes their access) the org's
``on_disconnect`` rule applies (``pipedesk_common.mirror.disconnect``): ``keep_metadata`` keeps
their events as last seen; ``remove`` removes every event of their calendars the way retention
does, each copy announced ``calendar.event.removed``. Both remove through the kit's
``pipedesk_common.mirror.removal``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from calendar_service.mirror import event_writer
from calendar_service.models import MirroredEvent, OrgCalendarSettings, UserCalendar
from pipedesk_common.clock import Clock
from pipedesk_common.events.calendar import CalendarEventRemoved
from pipedesk_common.mirror.disconnect import rule_on_disconnect
from pipedesk_common.mirror.removal import remove_mirrored, user_mirror_removal
from pipedesk_common.mirror.retention import Expire

SETTINGS_TABLE: Table = OrgCalendarSettings.__table__  # type: ignore[attr-defined]
EVENTS_TABLE: Table = MirroredEvent.__table__  # type: ignore[attr-defined]


def expire_events(clock: Clock) -> Expire:
    """The org's mirrored events that ended before the cutoff, but series, removed (see the
    module docstring), calendar by calendar; how many."""
    writer = event_writer(clock)

    async def expire(session: AsyncSession, org_id: str, cutoff: datetime) -> int:
        ended = col(MirroredEvent.end_at) < cutoff
        not_a_series = EVENTS_TABLE.c.resource["recurrence"].is_(None)
        return await remove_mirrored(
            session,
            writer,
            UserCalendar,
            CalendarEventRemoved,
            org_id=org_id,
            where=(ended, not_a_series),
        )

    return expire


access_ended = rule_on_disconnect(
    SETTINGS_TABLE, user_mirror_removal(event_writer, UserCalendar, CalendarEventRemoved)
)
