"""Leads' SLA clocks: what each lead waits for, and until when.

A lead of a priority the org has a policy for waits first for a response (until
``first_response_minutes`` of business time after it was created), then for each next touch
(``next_touch_minutes`` after the last one), in the business calendar of its team (the org's
default calendar, or every hour, without one). A response or touch is what the other services
report: an email sent to one of the lead's contacts (gmail), a meeting with one (calendar), a
call noted on the lead (CRM). A converted, disqualified or deleted lead waits for nothing.

The clocks follow CRM's events; whenever the due time (or whether a policy applies) differs
from what CRM holds, it is written through CRM's ``PUT /internal/leads/{id}/sla``. A change of
policy or calendar recomputes the clocks it touches at once and leaves their writing to CRM to
``automation.sla-sync`` (run by the scheduler, and at once after the change).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, time, timedelta
from typing import Any, Final
from uuid import UUID
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from automation_service.business_hours import BusinessCalendar, NoWorkingTime, always
from automation_service.settings import AutomationSettings
from automation_service.sla_models import (
    CLOSED_STATUSES,
    ORG_DEFAULT,
    BusinessCalendarRow,
    SlaClock,
    SlaContact,
    SlaPolicy,
    SlaUser,
)
from pipedesk_common.app import ServiceContext
from pipedesk_common.clock import Clock
from pipedesk_common.consumer import Consumer
from pipedesk_common.events import Event
from pipedesk_common.events.calendar import (
    CalendarEventCreated,
    CalendarEventSnapshot,
    CalendarEventUpdated,
)
from pipedesk_common.events.crm import (
    ContactCreated,
    ContactDeleted,
    ContactRestored,
    ContactSnapshot,
    ContactUpdated,
    LeadCreated,
    LeadDeleted,
    LeadRestored,
    LeadSnapshot,
    LeadUpdated,
    NoteCreated,
    UserCreated,
    UserSnapshot,
    UserUpdated,
)
from pipedesk_common.events.gmail import GmailMessageCreated
from pipedesk_common.events.timeline import RecordType

log = logging.getLogger(__name__)

FIRST_RESPONSE: Final = "first_response"
NEXT_TOUCH: Final = "next_touch"
WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class CrmUnavailable(RuntimeError):
    """CRM could not take a due time; the write is retried (its message names why)."""


# CRM's answers that a retry may change: the others refuse the write until it changes.
TRANSIENT_STATUSES: Final = frozenset({408, 425, 429})


def calendar_of(row: BusinessCalendarRow) -> BusinessCalendar:
    week = {
        WEEKDAYS.index(day) + 1: (time.fromisoformat(hours[0]), time.fromisoformat(hours[1]))
        for day, hours in row.week.items()
    }
    return BusinessCalendar(ZoneInfo(row.time_zone), week, frozenset(row.holidays))


async def team_calendar(
    session: AsyncSession, org_id: str, team_id: str | None
) -> BusinessCalendar:
    """The team's calendar, else the org's default, else every hour."""
    keys = [team_id, ORG_DEFAULT] if team_id else [ORG_DEFAULT]
    rows = {
        row.team_id: row
        for row in await session.scalars(
            select(BusinessCalendarRow).where(
                col(BusinessCalendarRow.org_id) == org_id,
                col(BusinessCalendarRow.team_id).in_(keys),
            )
        )
    }
    for key in keys:
        if key in rows:
            return calendar_of(rows[key])
    return always()


def stage_of(clock: SlaClock) -> str:
    return FIRST_RESPONSE if clock.responded_at is None else NEXT_TOUCH


def is_open(clock: SlaClock) -> bool:
    return not clock.deleted and clock.status not in CLOSED_STATUSES


async def recompute(session: AsyncSession, clock: SlaClock) -> None:
    """The clock's due time under its org's policy for its priority and its team's calendar."""
    before = (clock.due_at, clock.managed)
    policy = await session.get(SlaPolicy, (clock.org_id, clock.priority))
    clock.managed = policy is not None and not clock.deleted
    if policy is None or not is_open(clock):
        clock.due_at = None
    else:
        calendar = await team_calendar(session, clock.org_id, clock.team_id)
        if clock.responded_at is None:
            start, minutes = clock.created_at, policy.first_response_minutes
        else:
            start, minutes = clock.last_touch_at or clock.responded_at, policy.next_touch_minutes
        try:
            clock.due_at = calendar.add(start, timedelta(minutes=minutes))
        except NoWorkingTime:
            clock.due_at = None  # a calendar without working time: never due
    if (clock.due_at, clock.managed) != before:
        # A new due time is a new write: what CRM refused before may not be refused now.
        clock.crm_refusal = clock.crm_refused_at = None


def in_step_with_crm(clock: SlaClock) -> bool:
    return clock.crm_due_at == clock.due_at and clock.crm_managed == clock.managed


class CrmSla:
    """Writes due times to CRM (``PUT /internal/leads/{id}/sla``)."""

    def __init__(self, context: Callable[[], ServiceContext], settings: AutomationSettings) -> None:
        self._context = context
        self.settings = settings

    async def write(self, clock: SlaClock) -> None:
        """Make CRM hold the clock's due time. A lead CRM no longer has, or a write it refuses
        (``4xx``), is recorded on the clock with the reason and not retried until the clock
        changes; an answer a retry may change raises ``CrmUnavailable``."""
        if in_step_with_crm(clock):
            return
        context = self._context()
        url = f"{self.settings.crm_base_url.rstrip('/')}/internal/leads/{clock.lead_id}/sla"
        body: dict[str, Any] = {
            "org_id": clock.org_id,
            "sla_due_at": clock.due_at.isoformat() if clock.due_at else None,
            "managed": clock.managed,
        }
        try:
            answer = await context.http.put(
                url,
                json=body,
                headers={"Authorization": f"Bearer {context.issuer().token_for('crm')}"},
                timeout=30,
            )
        except httpx.HTTPError as exc:
            raise CrmUnavailable(
                f"lead {clock.lead_id}: CRM cannot be reached ({type(exc).__name__})"
            ) from exc
        if answer.status_code == 200 or (answer.status_code == 404 and clock.deleted):
            # A deleted lead's clock needs nothing of CRM: not holding the lead is in step.
            clock.crm_due_at, clock.crm_managed = clock.due_at, clock.managed
            clock.crm_refusal = clock.crm_refused_at = None
            return
        if answer.status_code >= 500 or answer.status_code in TRANSIENT_STATUSES:
            raise CrmUnavailable(
                f"lead {clock.lead_id}: CRM answered {answer.status_code}: {answer.text[:300]}"
            )
        if answer.status_code == 404:
            reason = "CRM has no such lead (deleted, or in the trash)"
        else:
            reason = f"CRM refused the due time: {answer.status_code}: {answer.text[:300]}"
        clock.crm_refusal = reason
        clock.crm_refused_at = self._context().clock.now()
        log.warning("lead %s: SLA due time not written: %s", clock.lead_id, reason)

    async def sync_pending(
        self, sessionmaker: async_sessionmaker[AsyncSession], *, limit: int = 200
    ) -> int:
        """Write every due time CRM does not hold yet; the number written.

        Each lead is on its own, in a transaction of its own that locks its clock alone for its
        one call to CRM (a clock another process holds is left to it): one CRM refuses is
        recorded on its clock (and left until the clock changes), one CRM cannot take now is
        logged and tried again at the next run, and the others are written all the same."""
        written = 0
        after: UUID | None = None
        while True:
            async with sessionmaker() as session:
                query = (
                    select(col(SlaClock.lead_id))
                    .where(out_of_step_with_crm())
                    .order_by(col(SlaClock.lead_id))
                    .limit(limit)
                )
                if after is not None:
                    query = query.where(col(SlaClock.lead_id) > after)
                lead_ids = list(await session.scalars(query))
            for lead_id in lead_ids:
                written += await self._sync_one(sessionmaker, lead_id)
            if len(lead_ids) < limit:
                return written
            after = lead_ids[-1]

    async def _sync_one(self, sessionmaker: async_sessionmaker[AsyncSession], lead_id: UUID) -> int:
        async with sessionmaker.begin() as session:
            clock = await session.scalar(
                select(SlaClock)
                .where(col(SlaClock.lead_id) == lead_id, out_of_step_with_crm())
                .with_for_update(skip_locked=True)
            )
            if clock is None:  # written meanwhile, or held by another process that writes it
                return 0
            try:
                await self.write(clock)
            except CrmUnavailable as exc:
                log.warning("SLA due time not written, retried at the next sync: %s", exc)
                return 0
            return int(clock.crm_refusal is None)


def out_of_step_with_crm() -> ColumnElement[bool]:
    """Clocks whose due time CRM does not hold, and has not refused."""
    return and_(
        or_(
            col(SlaClock.due_at).is_distinct_from(col(SlaClock.crm_due_at)),
            col(SlaClock.managed) != col(SlaClock.crm_managed),
        ),
        col(SlaClock.crm_refusal).is_(None),
    )


async def recompute_org(
    session: AsyncSession, org_id: str, *, priority: str | None = None, team_id: str | None = None
) -> int:
    """Recompute the org's open clocks of a priority or a team (``team_id`` empty: every team
    without a calendar of its own); CRM is told by ``sync_pending``."""
    query = select(SlaClock).where(col(SlaClock.org_id) == org_id, col(SlaClock.deleted).is_(False))
    if priority is not None:
        query = query.where(col(SlaClock.priority) == priority)
    if team_id:
        query = query.where(col(SlaClock.team_id) == team_id)
    elif team_id == ORG_DEFAULT:
        own = select(col(BusinessCalendarRow.team_id)).where(
            col(BusinessCalendarRow.org_id) == org_id, col(BusinessCalendarRow.team_id) != ""
        )
        query = query.where(or_(col(SlaClock.team_id).is_(None), col(SlaClock.team_id).not_in(own)))
    clocks = list(await session.scalars(query.with_for_update()))
    for clock in clocks:
        await recompute(session, clock)
    return len(clocks)


class SlaClocks:
    """The consumers that keep the clocks."""

    def __init__(self, crm: CrmSla, clock: Callable[[], Clock]) -> None:
        self.crm = crm
        self._clock = clock

    async def on_lead(self, session: AsyncSession, event: Event[LeadSnapshot]) -> None:
        data = event.data
        lead_id = UUID(data.id)
        clock = await session.get(SlaClock, lead_id, with_for_update=True)
        if clock is not None and clock.lead_version >= data.version:
            return
        if clock is None:
            clock = SlaClock(
                lead_id=lead_id,
                org_id=data.org_id,
                title=data.title,
                owner_id=data.owner_id,
                priority=data.priority,
                status=data.status,
                lead_version=data.version,
                created_at=data.created_at,
                updated_at=self._clock().now(),
            )
            session.add(clock)
        elif clock.org_id != data.org_id:
            return
        clock.title = data.title[:300]
        clock.owner_id = data.owner_id
        clock.team_id = data.team_id
        clock.priority = data.priority
        clock.status = data.status
        clock.contact_ids = [UUID(contact) for contact in data.contact_ids]
        clock.deleted = data.deleted_at is not None
        clock.lead_version = data.version
        clock.crm_due_at = data.sla_due_at
        clock.crm_managed = data.sla_managed
        clock.crm_refusal = clock.crm_refused_at = None  # CRM has the lead (again)
        clock.updated_at = self._clock().now()
        await recompute(session, clock)
        await session.flush()
        await self.crm.write(clock)

    async def on_contact(self, session: AsyncSession, event: Event[ContactSnapshot]) -> None:
        data = event.data
        values = {
            "org_id": data.org_id,
            "emails": sorted({email.lower() for email in data.emails}),
            "deleted": data.deleted_at is not None,
            "version": data.version,
        }
        statement = insert(SlaContact).values(contact_id=UUID(data.id), **values)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["contact_id"],
                set_=values,
                where=col(SlaContact.version) < statement.excluded.version,
            )
        )

    async def on_user(self, session: AsyncSession, event: Event[UserSnapshot]) -> None:
        data = event.data
        values = {
            "role": data.role,
            "team_ids": list(data.team_ids),
            "active": data.active,
            "version": data.version,
        }
        statement = insert(SlaUser).values(org_id=data.org_id, user_id=data.id, **values)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["org_id", "user_id"],
                set_=values,
                where=col(SlaUser.version) < statement.excluded.version,
            )
        )

    async def touched(
        self,
        session: AsyncSession,
        org_id: str,
        at: datetime,
        *,
        emails: Iterable[str] = (),
        lead_ids: Iterable[str] = (),
    ) -> None:
        """A response to (or touch of) the org's open leads that have one of these contacts'
        addresses, or these ids, at ``at``."""
        addresses = sorted({email.lower() for email in emails if email})
        ids = [UUID(lead) for lead in lead_ids]
        conditions = []
        if addresses:
            contacts = select(col(SlaContact.contact_id)).where(
                col(SlaContact.org_id) == org_id,
                col(SlaContact.deleted).is_(False),
                SlaContact.__table__.c.emails.overlap(addresses),  # type: ignore[attr-defined]
            )
            contact_ids = list(await session.scalars(contacts))
            if contact_ids:
                conditions.append(SlaClock.__table__.c.contact_ids.overlap(contact_ids))  # type: ignore[attr-defined]
        if ids:
            conditions.append(col(SlaClock.lead_id).in_(ids))
        if not conditions:
            return
        clocks = await session.scalars(
            select(SlaClock)
            .where(col(SlaClock.org_id) == org_id, or_(*conditions))
            .order_by(col(SlaClock.lead_id))
            .with_for_update()
        )
        for clock in list(clocks):
            if not is_open(clock) or at < clock.created_at:
                continue
            if clock.managed and clock.due_at is not None and clock.due_at < at:
                # Too late: the breach stands even if no scan saw it before this response
                # moved the due time on; the worker raises it (once) at its next run.
                clock.overdue_stage, clock.overdue_due_at = stage_of(clock), clock.due_at
            if clock.responded_at is None:
                clock.responded_at = at
            if clock.last_touch_at is None or at > clock.last_touch_at:
                clock.last_touch_at = at
            clock.updated_at = self._clock().now()
            await recompute(session, clock)
            await session.flush()
            await self.crm.write(clock)

    async def on_sent_mail(self, session: AsyncSession, event: Event[GmailMessageCreated]) -> None:
        data = event.data
        if "SENT" not in data.label_ids or data.deleted:
            return
        leads = [link.id for link in data.timeline.links if link.type is RecordType.LEAD]
        await self.touched(
            session, data.org_id, data.internal_date, emails=data.recipients, lead_ids=leads
        )

    async def on_meeting(self, session: AsyncSession, event: Event[CalendarEventSnapshot]) -> None:
        """A meeting responds when it is arranged or when it is held, whichever is first: the
        event's time (when PipeDesk learned of it) or its start, if that was earlier. A meeting
        arranged before the deadline for a time after it is on time: arranging it is the
        contact. One recorded after it was held counts when it was held."""
        data = event.data
        if data.status == "cancelled":
            return
        at = event.time if data.start is None else min(event.time, data.start)
        leads = [link.id for link in data.links if link.type is RecordType.LEAD]
        await self.touched(session, data.org_id, at, emails=data.attendees, lead_ids=leads)

    async def on_note(self, session: AsyncSession, event: Event[NoteCreated]) -> None:
        data = event.data
        if data.kind != "call" or data.record.type is not RecordType.LEAD:
            return
        await self.touched(session, data.org_id, data.created_at, lead_ids=[data.record.id])

    def subscribe(self, consumer: Consumer) -> None:
        for lead_event in (LeadCreated, LeadUpdated, LeadDeleted, LeadRestored):
            consumer.on(lead_event)(self.on_lead)
        for contact_event in (ContactCreated, ContactUpdated, ContactDeleted, ContactRestored):
            consumer.on(contact_event)(self.on_contact)
        for user_event in (UserCreated, UserUpdated):
            consumer.on(user_event)(self.on_user)
        consumer.on(GmailMessageCreated)(self.on_sent_mail)
        for meeting_event in (CalendarEventCreated, CalendarEventUpdated):
            consumer.on(meeting_event)(self.on_meeting)
        consumer.on(NoteCreated)(self.on_note)


async def team_managers(session: AsyncSession, org_id: str, team_id: str | None) -> list[str]:
    """The team's managers: its active users with the manager role."""
    if not team_id:
        return []
    found = await session.scalars(
        select(col(SlaUser.user_id))
        .where(
            col(SlaUser.org_id) == org_id,
            col(SlaUser.role) == "manager",
            col(SlaUser.active).is_(True),
            col(SlaUser.team_ids).contains([team_id]),
        )
        .order_by(col(SlaUser.user_id))
    )
    return list(found)


async def org_admins(session: AsyncSession, org_id: str) -> list[str]:
    found = await session.scalars(
        select(col(SlaUser.user_id))
        .where(
            col(SlaUser.org_id) == org_id,
            col(SlaUser.role) == "admin",
            col(SlaUser.active).is_(True),
        )
        .order_by(col(SlaUser.user_id))
    )
    return list(found)


def unique(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))
