"""The SLA worker: finds leads whose due time is near or passed and raises each alert once.

Run by the database-leased scheduler (``automation.sla-scan``), and safe however many replicas
run it at once: an alert is one row per lead, kind and due time, and only the transaction that
inserts it publishes its event (``automation.sla.warning`` / ``automation.sla.breached``, a
timeline item of the lead) and records its notifications (the owner, the team's managers and,
for a breach under a policy that escalates, the org's admins; one each, keyed by the alert and
the recipient), less those who opted out of the kind (``sla_warning``, ``sla_breached``): the
event and its timeline item are raised all the same. Each lead is decided in its own
transaction, holding its clock: a response recorded meanwhile moves the due time and the alert
is not raised. The ``sla.worker`` flag is
read for each lead's org and team at every run: turned off, the worker has no effect there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID, uuid5

from prometheus_client import Counter
from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from automation_service.flags import SLA_WORKER, Flags
from automation_service.models import Notification, outbox
from automation_service.notifications import wants
from automation_service.sla import (
    FIRST_RESPONSE,
    is_open,
    org_admins,
    stage_of,
    team_managers,
    unique,
)
from automation_service.sla_models import SlaAlert, SlaClock, SlaNotification, SlaPolicy
from pipedesk_common.clock import Clock
from pipedesk_common.events import Event, new_event
from pipedesk_common.events.automation import NotificationRequested, SlaBreached, SlaWarning
from pipedesk_common.events.timeline import (
    ItemKind,
    Link,
    RecordType,
    TimelineProjection,
    TimelineSource,
)
from pipedesk_common.ids import new_id
from pipedesk_common.outbox import add_events_to

log = logging.getLogger(__name__)

WARNING: Final = "warning"
BREACHED: Final = "breached"
NOTIFICATION_KINDS: Final = {WARNING: "sla_warning", BREACHED: "sla_breached"}
SLA_ACTOR: Final = "svc:automation"
ALERTS = Counter("pipedesk_sla_alerts_total", "SLA alerts raised", ["kind"])
STAGE_WORDS: Final = {FIRST_RESPONSE: "first response", "next_touch": "next touch"}


@dataclass(frozen=True)
class Alert:
    """What a lead's clock calls for: a ``warning`` or ``breached`` alert of the stage due at
    ``due_at``."""

    kind: str
    stage: str
    due_at: datetime

    @property
    def breached(self) -> bool:
        return self.kind == BREACHED

    @property
    def notification_kind(self) -> str:
        return NOTIFICATION_KINDS[self.kind]


class SlaWorker:
    def __init__(
        self,
        sessionmaker: Callable[[], async_sessionmaker[AsyncSession]],
        clock: Callable[[], Clock],
        flags: Callable[[], Flags],
    ) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._flags = flags

    async def run(self) -> int:
        """Raise what is due now; the number of alerts this run raised."""
        now = self._clock().now()
        sessions = self._sessionmaker()
        async with sessions() as session:
            candidates = (
                await session.execute(
                    select(col(SlaClock.lead_id), col(SlaClock.org_id), col(SlaClock.team_id))
                    .join(
                        SlaPolicy,
                        (col(SlaPolicy.org_id) == col(SlaClock.org_id))
                        & (col(SlaPolicy.priority) == col(SlaClock.priority)),
                    )
                    .where(
                        col(SlaClock.managed).is_(True),
                        col(SlaClock.deleted).is_(False),
                        or_(
                            col(SlaClock.overdue_due_at).is_not(None),
                            col(SlaClock.due_at)
                            - func.make_interval(0, 0, 0, 0, 0, col(SlaPolicy.warning_minutes))
                            <= now,
                        ),
                    )
                    .order_by(col(SlaClock.due_at), col(SlaClock.lead_id))
                )
            ).all()
        raised = 0
        enabled: dict[tuple[str, str | None], bool] = {}
        for lead_id, org_id, team_id in candidates:
            key = (org_id, team_id)
            if key not in enabled:
                enabled[key] = await self._flags().enabled(SLA_WORKER, org_id, team_id)
            if not enabled[key]:
                continue
            async with sessions.begin() as session:
                raised += await self.decide(session, lead_id, now)
        return raised

    async def decide(self, session: AsyncSession, lead_id: UUID, now: datetime) -> int:
        """The alerts a lead's clock calls for now: the breach a late response left behind, then
        the current due time's warning or breach; how many were raised (each only once)."""
        clock = await session.get(SlaClock, lead_id, with_for_update=True)
        if clock is None or not clock.managed:
            return 0
        policy = await session.get(SlaPolicy, (clock.org_id, clock.priority))
        if policy is None:
            return 0
        raised = 0
        if clock.overdue_stage is not None and clock.overdue_due_at is not None:
            missed = Alert(BREACHED, clock.overdue_stage, clock.overdue_due_at)
            raised += await self._raise(session, clock, policy, missed, now)
            clock.overdue_stage = clock.overdue_due_at = None
        if clock.due_at is None or not is_open(clock):
            return raised
        if clock.due_at <= now:
            kind = BREACHED
        elif clock.due_at - timedelta(minutes=policy.warning_minutes) <= now:
            kind = WARNING
        else:
            return raised
        if kind == WARNING and policy.warning_minutes == 0:
            return raised
        alert = Alert(kind, stage_of(clock), clock.due_at)
        return raised + await self._raise(session, clock, policy, alert, now)

    async def _raise(
        self, session: AsyncSession, clock: SlaClock, policy: SlaPolicy, alert: Alert, now: datetime
    ) -> int:
        """``alert``, its event and notifications; 1 if this call raised it, 0 if it had been
        raised already."""
        recipients = [clock.owner_id, *await team_managers(session, clock.org_id, clock.team_id)]
        if alert.breached and policy.escalate_to_admins:
            recipients += await org_admins(session, clock.org_id)
        recipients = [
            user
            for user in unique(recipients)
            if await wants(session, clock.org_id, user, alert.notification_kind)
        ]
        alert_id = await session.scalar(
            insert(SlaAlert)
            .values(
                id=new_id(),
                org_id=clock.org_id,
                lead_id=clock.lead_id,
                kind=alert.kind,
                stage=alert.stage,
                due_at=alert.due_at,
                owner_id=clock.owner_id,
                team_id=clock.team_id,
                recipient_ids=recipients,
                created_at=now,
            )
            .on_conflict_do_nothing(constraint="one_per_due_time")
            .returning(col(SlaAlert.id))
        )
        if alert_id is None:
            return 0
        await self._publish(session, clock, alert_id, alert, recipients, now)
        ALERTS.labels(alert.kind).inc()
        return 1

    async def _publish(
        self,
        session: AsyncSession,
        clock: SlaClock,
        alert_id: UUID,
        alert: Alert,
        recipients: list[str],
        now: datetime,
    ) -> None:
        link = Link(type=RecordType.LEAD, id=str(clock.lead_id))
        words = STAGE_WORDS[alert.stage]
        title = (
            f"SLA breached: {words} overdue" if alert.breached else f"SLA warning: {words} due soon"
        )
        model = SlaBreached if alert.breached else SlaWarning
        events: list[Event[Any]] = [
            new_event(
                model(
                    alert_id=alert_id,
                    org_id=clock.org_id,
                    record=link,
                    stage=alert.stage,
                    due_at=alert.due_at,
                    priority=clock.priority,
                    owner_id=clock.owner_id,
                    team_id=clock.team_id,
                    recipient_ids=recipients,
                    timeline=TimelineProjection(
                        kind=ItemKind.SLA,
                        occurred_at=alert.due_at if alert.breached else now,
                        title=title,
                        summary=f"The {words} of this {clock.priority}-priority lead was due "
                        f"at {alert.due_at.isoformat()}.",
                        links=[link],
                        source=TimelineSource(
                            service="automation", key=f"automation:sla:{alert_id}"
                        ),
                        status=alert.kind,
                        actor_id=SLA_ACTOR,
                    ),
                ),
                org_id=clock.org_id,
                actor_id=SLA_ACTOR,
                time=now,
            )
        ]
        for recipient in recipients:
            notification_id = uuid5(alert_id, recipient)
            await session.execute(
                insert(Notification)
                .values(
                    id=notification_id,
                    org_id=clock.org_id,
                    kind=alert.notification_kind,
                    record_type="lead",
                    record_id=str(clock.lead_id),
                    # A notification is sent from the org's automation sender, or else from
                    # the lead owner's mailbox.
                    actor_id=clock.owner_id,
                    new_owner_id=clock.owner_id,
                    previous_owner_id=clock.owner_id,
                    recipient_ids=[recipient],
                    status="pending",
                    created_at=now,
                )
                .on_conflict_do_nothing(index_elements=["id"])
            )
            session.add(SlaNotification(notification_id=notification_id, alert_id=alert_id))
            events.append(
                new_event(
                    NotificationRequested(notification_id=notification_id, org_id=clock.org_id),
                    org_id=clock.org_id,
                    actor_id=SLA_ACTOR,
                    time=now,
                )
            )
        await add_events_to(session, outbox, events)
