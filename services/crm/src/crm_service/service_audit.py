"""Actions other services take on records, in the org's one audit log: the drive service
publishes each Drive action (``drive.audit.recorded``), the gmail service each link of mail to a
record made or undone by hand (``gmail.audit.recorded``). A consumer per service stores them
beside CRM's own entries, append-only, with ``source`` naming the service, once however often
they are delivered, and publishes nothing (those services' own events carry the timeline's
items)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic_core import to_jsonable_python
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from crm_service.models import AuditEntry, inbox
from pipedesk_common.consumer import Consumer
from pipedesk_common.events import Event
from pipedesk_common.events.drive import DriveAuditRecorded
from pipedesk_common.events.gmail import GmailAuditRecorded

DRIVE_QUEUE = "crm.drive-audit"
GMAIL_QUEUE = "crm.gmail-audit"


async def store(session: AsyncSession, event: Event[Any], source: str, **entry: Any) -> None:
    """The audit entry of another service's action, under the id it gave it (a redelivery
    stores nothing more)."""
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
            occurred_at=data.occurred_at,
            source=source,
            **entry,
        )
        .on_conflict_do_nothing(index_elements=["id"])
    )


def drive_audit_consumer() -> Consumer:
    consumer = Consumer(DRIVE_QUEUE, inbox)

    @consumer.on(DriveAuditRecorded)
    async def on_recorded(session: AsyncSession, event: Event[DriveAuditRecorded]) -> None:
        data = event.data
        await store(
            session,
            event,
            "drive",
            changes=to_jsonable_python(data.changes),
            file_id=data.file_id,
            file_name=data.file_name,
            caused_by=UUID(data.audit_id) if data.audit_id else None,
        )

    return consumer


def gmail_audit_consumer() -> Consumer:
    consumer = Consumer(GMAIL_QUEUE, inbox)

    @consumer.on(GmailAuditRecorded)
    async def on_recorded(session: AsyncSession, event: Event[GmailAuditRecorded]) -> None:
        data = event.data
        ids = data.message_ids
        linked = data.action == "mail_linked"
        await store(
            session,
            event,
            "gmail",
            changes={"message_ids": [None, ids] if linked else [ids, None]},
            file_id=data.thread_id,
        )

    return consumer
