"""Every change of a lead leaves an audit row and the events that describe it, in the same
transaction as the change: the snapshot event, the audit event with its timeline projection,
and — when who may see the lead changed — the access list event."""

from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy.ext.asyncio import AsyncSession

from crm_service.models import AuditEntry, Lead, outbox
from pipedesk_common.auth import Principal
from pipedesk_common.events import EventData, new_event
from pipedesk_common.events.crm import (
    AuditRecorded,
    LeadAccessChanged,
    LeadCreated,
    LeadDeleted,
    LeadRestored,
    LeadUpdated,
)
from pipedesk_common.events.timeline import (
    ItemKind,
    Link,
    RecordType,
    TimelineProjection,
    TimelineSource,
)
from pipedesk_common.ids import new_id
from pipedesk_common.observability import request_id_var
from pipedesk_common.outbox import add_event

Changes = dict[str, tuple[Any, Any]]

ACCESS_FIELDS = frozenset({"owner_id", "team_id"})
SNAPSHOT_FIELDS = (
    "org_id", "title", "company_name", "owner_id", "team_id", "status", "priority", "source",
    "estimated_value", "currency", "tags", "next_step", "sla_due_at", "created_at", "updated_at",
    "deleted_at",
)  # fmt: skip

TITLES = {
    "created": "Lead created",
    "updated": "Lead updated",
    "deleted": "Lead moved to the trash",
    "restored": "Lead restored",
}


def lead_access(lead: Lead) -> LeadAccessChanged:
    """Who may see or change ``lead``, as events and the internal ACL route state it."""
    return LeadAccessChanged(
        id=str(lead.id),
        version=lead.version,
        org_id=lead.org_id,
        owner_id=lead.owner_id,
        team_id=lead.team_id,
        members={},
        deleted=lead.deleted_at is not None,
    )


def _snapshot(lead: Lead) -> dict[str, Any]:
    return {"id": str(lead.id), "version": lead.version} | {
        name: getattr(lead, name) for name in SNAPSHOT_FIELDS
    }


def _summary(changes: Changes) -> str | None:
    if not changes:
        return None
    parts = [
        f"{field}: {_show(old)} → {_show(new)}" for field, (old, new) in sorted(changes.items())
    ]
    return "; ".join(parts)[:4000]


def _show(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "—"
    return str(value)


async def record_lead_change(
    session: AsyncSession, principal: Principal, lead: Lead, action: str, changes: Changes
) -> AuditEntry:
    """Audit one change of ``lead`` and add its events to the outbox."""
    jsonable_changes: dict[str, Any] = to_jsonable_python(changes)
    entry = AuditEntry(
        id=new_id(),
        org_id=lead.org_id,
        record_type=RecordType.LEAD.value,
        record_id=lead.id,
        action=action,
        actor_id=principal.sub,
        changes=jsonable_changes,
        occurred_at=lead.updated_at,
        request_id=request_id_var.get(),
    )
    session.add(entry)
    snapshot = _snapshot(lead)
    events: list[EventData] = []
    if action == "created":
        events.append(LeadCreated(**snapshot))
    elif action == "updated":
        events.append(LeadUpdated(**snapshot, changed=sorted(changes)))
    elif action == "deleted":
        events.append(LeadDeleted(**snapshot))
    elif action == "restored":
        events.append(LeadRestored(**snapshot))
    record = Link(type=RecordType.LEAD, id=str(lead.id))
    events.append(
        AuditRecorded(
            id=str(entry.id),
            record=record,
            action=action,
            actor_id=principal.sub,
            changes=jsonable_changes,
            occurred_at=entry.occurred_at,
            timeline=TimelineProjection(
                kind=ItemKind.AUDIT,
                occurred_at=entry.occurred_at,
                title=TITLES.get(action, f"Lead {action}"),
                summary=_summary(changes) if action == "updated" else None,
                links=[record],
                source=TimelineSource(service="crm", key=f"crm:audit:{entry.id}"),
                actor_id=principal.sub,
            ),
        )
    )
    if action != "updated" or ACCESS_FIELDS & changes.keys():
        events.append(lead_access(lead))
    await session.flush()
    for data in events:
        event = new_event(data, org_id=lead.org_id, actor_id=principal.sub, time=entry.occurred_at)
        await add_event(session, outbox, event)
    return entry
