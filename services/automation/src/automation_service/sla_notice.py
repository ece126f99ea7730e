"""The words of an SLA notification, from the alert it is about."""

from __future__ import annotations

from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from automation_service import templates
from automation_service.models import Notification
from automation_service.sla_models import SlaAlert, SlaClock, SlaNotification

SLA_KINDS: Final = frozenset({"sla_warning", "sla_breached"})
STAGES: Final = {"first_response": "first response", "next_touch": "next touch"}


async def sla_notice(
    session: AsyncSession, notification: Notification, url: str
) -> templates.Rendered:
    link = await session.get(SlaNotification, notification.id)
    alert = await session.get(SlaAlert, link.alert_id) if link is not None else None
    if alert is None:
        raise LookupError(f"notification {notification.id} names no SLA alert")
    clock = await session.get(SlaClock, alert.lead_id)
    return templates.sla_alert(
        breached=alert.kind == "breached",
        title=clock.title if clock is not None else "a lead",
        stage=STAGES.get(alert.stage, alert.stage),
        due=alert.due_at.strftime("%Y-%m-%d %H:%M UTC"),
        priority=clock.priority if clock is not None else "",
        url=url,
    )
