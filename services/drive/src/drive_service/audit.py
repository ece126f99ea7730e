"""Drive actions taken through PipeDesk, for the org's one audit log: each is published as
``drive.audit.recorded`` in the transaction that records its effect (CRM stores it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from drive_service.models import TABLES
from pipedesk_common.clock import Clock
from pipedesk_common.events import new_event
from pipedesk_common.events.drive import DriveAuditRecorded
from pipedesk_common.events.timeline import Link, RecordType
from pipedesk_common.ids import new_id
from pipedesk_common.outbox import add_event


async def record_action(
    session: AsyncSession,
    clock: Clock,
    *,
    org_id: str,
    record: tuple[str, str],
    actor_id: str,
    action: str,
    file_id: str | None,
    file_name: str | None,
    changes: dict[str, tuple[Any, Any]],
    audit_id: str | None = None,
) -> None:
    """Publish one audited Drive action (``record``: its type and id) with the session's
    transaction; ``audit_id``: the CRM change that caused it, if one did."""
    now = clock.now()
    data = DriveAuditRecorded(
        id=str(new_id()),
        org_id=org_id,
        record=Link(type=RecordType(record[0]), id=record[1]),
        action=action,
        actor_id=actor_id,
        file_id=file_id,
        file_name=file_name,
        changes=changes,
        occurred_at=now,
        audit_id=audit_id,
    )
    await add_event(
        session, TABLES.outbox, new_event(data, org_id=org_id, actor_id=actor_id, time=now)
    )
