"""Mail linked to records by hand, or unlinked, in the org's one audit log: the gmail service
publishes each change (``gmail.audit.recorded``) and this consumer stores it beside CRM's own
entries, append-only, with ``source = gmail``, once however often it is delivered (the gmail
service's message events carry the timeline's items)."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from crm_service.models import AuditEntry, inbox
from pipedesk_common.consumer import Consumer
from pipedesk_common.events import Event
from pipedesk_common.events.gmail import GmailAuditRecorded

QUEUE = "crm.gmail-audit"


def gmail_audit_consumer() -> Consumer:
    consumer = Consumer(QUEUE, inbox)

    @consumer.on(GmailAuditRecorded)
    async def on_recorded(session: AsyncSession, event: Event[GmailAuditRecorded]) -> None:
        data = event.data
        table = AuditEntry.__table__  # type: ignore[attr-defined]
        linked = data.action == "mail_linked"
        await session.execute(
            insert(table)
            .values(
                id=UUID(data.id),
                org_id=event.org_id,
                record_type=data.record.type.value,
                record_id=data.record.id,
                action=data.action,
                actor_id=data.actor_id,
                changes={
                    "message_ids": [None, data.message_ids] if linked else [data.message_ids, None]
                },
                occurred_at=data.occurred_at,
                source="gmail",
                file_id=data.thread_id,
            )
            .on_conflict_do_nothing(index_elements=["id"])
        )

    return consumer
