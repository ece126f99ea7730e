"""Drive actions in the org's one audit log: the drive service publishes each
(``drive.audit.recorded``) and this consumer stores it beside CRM's own entries, append-only,
with ``source = drive``, once however often it is delivered, and publishes nothing (the drive
service's file events carry the timeline's items)."""

from __future__ import annotations

from uuid import UUID

from pydantic_core import to_jsonable_python
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from crm_service.models import AuditEntry, inbox
from pipedesk_common.consumer import Consumer
from pipedesk_common.events import Event
from pipedesk_common.events.drive import DriveAuditRecorded

QUEUE = "crm.drive-audit"


def drive_audit_consumer() -> Consumer:
    consumer = Consumer(QUEUE, inbox)

    @consumer.on(DriveAuditRecorded)
    async def on_recorded(session: AsyncSession, event: Event[DriveAuditRecorded]) -> None:
        data = event.data
        table = AuditEntry.__table__  # type: ignore[attr-defined]
        await session.execute(
            insert(table)
            .values(
                id=UUID(data.id),
                org_id=event.org_id,
                record_type=data.record.type.value,
                record_id=data.record.id,
                action=data.action,
                actor_id=data.actor_id,
                changes=to_jsonable_python(data.changes),
                occurred_at=data.occurred_at,
                source="drive",
                file_id=data.file_id,
                file_name=data.file_name,
                caused_by=UUID(data.audit_id) if data.audit_id else None,
            )
            .on_conflict_do_nothing(index_elements=["id"])
        )

    return consumer
