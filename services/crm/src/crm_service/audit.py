"""The audit log, written by SQLAlchemy session listeners rather than by each route.

Whatever code changes a CRM row through the ORM, the flush that writes it also writes, in the
same transaction: one append-only ``crm.audit_log`` row per change (field-level diff, actor, org,
request id, time), and the events that describe it — the record's snapshot event, its
``crm.audit.recorded`` event with a timeline projection, its ``access_changed`` event when who may
see it changed, and ``owner_changed`` when it changed hands. A flush that changes an audited row
without an actor (``act_as``) fails, and bulk UPDATE/DELETE statements on audited tables are
refused, so no path can change a record without leaving its audit row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic_core import to_jsonable_python
from sqlalchemy import Delete, Update, event, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from crm_service.models import (
    AuditEntry,
    Company,
    Contact,
    Deal,
    Lead,
    Note,
    RecordMember,
    Team,
    User,
    outbox,
)
from pipedesk_common.auth import Principal
from pipedesk_common.clock import Clock
from pipedesk_common.events import EventData, new_event
from pipedesk_common.events.crm import (
    AccessChanged,
    AuditRecorded,
    CompanyCreated,
    CompanyDeleted,
    CompanyRestored,
    CompanyUpdated,
    ContactCreated,
    ContactDeleted,
    ContactRestored,
    ContactUpdated,
    DealAccessChanged,
    DealCreated,
    DealDeleted,
    DealOwnerChanged,
    DealRestored,
    DealUpdated,
    LeadAccessChanged,
    LeadCreated,
    LeadDeleted,
    LeadOwnerChanged,
    LeadRestored,
    LeadUpdated,
    NoteCreated,
    NoteDeleted,
    NoteUpdated,
    TeamArchived,
    TeamCreated,
    TeamUpdated,
    UserCreated,
    UserUpdated,
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
from pipedesk_common.outbox import add_events

Changes = dict[str, tuple[Any, Any]]

ACTOR_KEY = "crm.audit.actor"
REASONS_KEY = "crm.audit.reasons"
CAUSE_KEY = "crm.audit.caused_by"


@dataclass(frozen=True)
class Actor:
    """Who is changing records through a session, and the clock that dates the change."""

    org_id: str
    user_id: str
    clock: Clock


def act_as(session: AsyncSession | Session, principal: Principal, clock: Clock) -> None:
    """Attribute every change flushed through ``session`` to ``principal``."""
    session.info[ACTOR_KEY] = Actor(principal.org_id, principal.sub, clock)


def act_for(session: AsyncSession | Session, org_id: str, actor_id: str, clock: Clock) -> None:
    """Attribute every change flushed through ``session`` to user ``actor_id`` of ``org_id``
    (work the CRM does on its own for the user who asked for it)."""
    session.info[ACTOR_KEY] = Actor(org_id, actor_id, clock)


def caused_by(session: AsyncSession | Session, audit_id: UUID | None) -> None:
    """Record every change flushed through ``session`` from now on as caused by the audit entry
    ``audit_id`` (a user's deactivation, for the hand-over of their records)."""
    session.info[CAUSE_KEY] = audit_id


@dataclass(frozen=True)
class OwnerChangeContext:
    reason: str | None
    previous_owner_kept_as: str | None


def explain_owner_change(
    session: AsyncSession, record_id: str, context: OwnerChangeContext
) -> None:
    """The reason (and membership choice) the audit row and event of an owner change carry."""
    session.info.setdefault(REASONS_KEY, {})[record_id] = context


@dataclass(frozen=True)
class Audited:
    """How rows of one table are audited: the record type and the fields diffed."""

    record_type: str
    fields: tuple[str, ...]


LEAD_FIELDS = (
    "title", "company_name", "company_id", "contact_ids", "owner_id", "team_id", "status",
    "priority", "source", "estimated_value", "currency", "tags", "next_step", "sla_due_at",
    "sla_managed", "deleted_at",
)  # fmt: skip
DEAL_FIELDS = (
    "title", "company_id", "contact_ids", "lead_id", "owner_id", "team_id", "stage", "amount",
    "currency", "expected_close_date", "deleted_at",
)  # fmt: skip

AUDITED: dict[type[Any], Audited] = {
    Lead: Audited("lead", LEAD_FIELDS),
    Deal: Audited("deal", DEAL_FIELDS),
    Contact: Audited(
        "contact", ("name", "emails", "phones", "company_id", "job_title", "deleted_at")
    ),
    Company: Audited("company", ("name", "domain", "deleted_at")),
    User: Audited("user", ("email", "name", "role", "team_ids", "active")),
    Team: Audited("team", ("name", "archived_at")),
    RecordMember: Audited("member", ("role",)),
    Note: Audited("note", ("body", "deleted_at")),
}
AUDITED_TABLES = frozenset(model.__table__ for model in AUDITED)
ACCESS_FIELDS = frozenset({"owner_id", "team_id", "deleted_at"})
LABELS = {"lead": "Lead", "deal": "Deal", "contact": "Contact", "company": "Company"}
ACTION_TITLES = {
    "created": "{label} created",
    "updated": "{label} updated",
    "deleted": "{label} moved to the trash",
    "restored": "{label} restored",
    "owner_changed": "{label} owner changed",
    "member_added": "Member added",
    "member_updated": "Member's role changed",
    "member_removed": "Member removed",
    "note_added": "Note added",
    "note_edited": "Note edited",
    "note_deleted": "Note deleted",
}


@dataclass
class Entry:
    """One audited change, before it becomes a row and events."""

    record_type: str
    record_id: str
    org_id: str
    action: str
    changes: Changes
    row: Any
    reason: str | None = None


def _diff(obj: Any, fields: tuple[str, ...]) -> Changes:
    state = inspect(obj)
    changes: Changes = {}
    for name in fields:
        history = state.attrs[name].history
        if not history.has_changes():
            continue
        old = history.deleted[0] if history.deleted else None
        new = history.added[0] if history.added else None
        if old != new:
            changes[name] = (old, new)
    return changes


def _initial(obj: Any, fields: tuple[str, ...]) -> Changes:
    changes: Changes = {}
    for name in fields:
        value = getattr(obj, name)
        if value is not None and value != []:
            changes[name] = (None, value)
    return changes


def _state_action(changes: Changes, *, deleted_field: str = "deleted_at") -> str:
    if deleted_field in changes:
        old, _new = changes[deleted_field]
        return "deleted" if old is None else "restored"
    if "owner_id" in changes:
        return "owner_changed"
    return "updated"


def _created(obj: Any, spec: Audited) -> Entry:
    if isinstance(obj, RecordMember):
        change: Changes = {f"member:{obj.user_id}": (None, obj.role)}
        return Entry(obj.record_type, str(obj.record_id), obj.org_id, "member_added", change, obj)
    if isinstance(obj, Note):
        change = {f"note:{obj.id}": (None, obj.body)}
        return Entry(obj.record_type, str(obj.record_id), obj.org_id, "note_added", change, obj)
    initial = _initial(obj, spec.fields)
    return Entry(spec.record_type, str(obj.id), obj.org_id, "created", initial, obj)


def _changed(obj: Any, spec: Audited, changes: Changes) -> Entry:
    if isinstance(obj, RecordMember):
        change: Changes = {f"member:{obj.user_id}": changes["role"]}
        return Entry(obj.record_type, str(obj.record_id), obj.org_id, "member_updated", change, obj)
    if isinstance(obj, Note):
        action = "note_deleted" if "deleted_at" in changes else "note_edited"
        old_body = changes.get("body", (obj.body, obj.body))[0]
        change = {f"note:{obj.id}": (old_body, None if action == "note_deleted" else obj.body)}
        return Entry(obj.record_type, str(obj.record_id), obj.org_id, action, change, obj)
    if isinstance(obj, Team):
        archived = "archived_at" in changes and changes["archived_at"][1] is not None
        return Entry(
            "team", obj.id, obj.org_id, "archived" if archived else "updated", changes, obj
        )
    if isinstance(obj, User):
        action = "updated"
        if "active" in changes:
            action = "reactivated" if changes["active"][1] else "deactivated"
        return Entry("user", obj.id, obj.org_id, action, changes, obj)
    action = _state_action(changes)
    return Entry(spec.record_type, str(obj.id), obj.org_id, action, changes, obj)


def _entries(session: Session) -> list[Entry]:
    entries: list[Entry] = []
    for obj in session.new:
        spec = AUDITED.get(type(obj))
        if spec is not None:
            entries.append(_created(obj, spec))
    for obj in session.dirty:
        spec = AUDITED.get(type(obj))
        if spec is not None and (changes := _diff(obj, spec.fields)):
            entries.append(_changed(obj, spec, changes))
    for obj in session.deleted:
        if isinstance(obj, RecordMember):
            change: Changes = {f"member:{obj.user_id}": (obj.role, None)}
            entries.append(
                Entry(
                    obj.record_type, str(obj.record_id), obj.org_id, "member_removed", change, obj
                )
            )
        elif type(obj) in AUDITED:
            raise PermissionError(f"{type(obj).__name__} rows are soft-deleted, never removed")
    return entries


def _ids(values: list[Any]) -> list[str]:
    return [str(value) for value in values]


def _members(session: Session, record_type: str, record_id: Any) -> dict[str, str]:
    rows = session.connection().execute(
        select(RecordMember.user_id, RecordMember.role).where(  # type: ignore[call-overload]
            RecordMember.record_type == record_type, RecordMember.record_id == record_id
        )
    )
    return {str(user_id): str(role) for user_id, role in rows}


def access_of(record: Lead | Deal, members: dict[str, str]) -> AccessChanged:
    """Who may see or change ``record``, as its events and the internal ACL route state it."""
    model = LeadAccessChanged if isinstance(record, Lead) else DealAccessChanged
    return model(
        id=str(record.id),
        version=record.version,
        org_id=record.org_id,
        owner_id=record.owner_id,
        team_id=record.team_id,
        members=members,
        deleted=record.deleted_at is not None,
    )


def _common(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "version": row.version,
        "org_id": row.org_id,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def _lead(row: Lead) -> dict[str, Any]:
    return (
        _common(row)
        | {
            name: getattr(row, name)
            for name in LEAD_FIELDS
            if name not in {"company_id", "contact_ids"}
        }
        | {
            "company_id": str(row.company_id) if row.company_id else None,
            "contact_ids": _ids(row.contact_ids),
        }
    )


def _deal(row: Deal) -> dict[str, Any]:
    return (
        _common(row)
        | {
            name: getattr(row, name)
            for name in DEAL_FIELDS
            if name not in {"company_id", "contact_ids", "lead_id"}
        }
        | {
            "company_id": str(row.company_id) if row.company_id else None,
            "contact_ids": _ids(row.contact_ids),
            "lead_id": str(row.lead_id) if row.lead_id else None,
        }
    )


def _contact(row: Contact) -> dict[str, Any]:
    return _common(row) | {
        "name": row.name,
        "emails": row.emails,
        "phones": row.phones,
        "company_id": str(row.company_id) if row.company_id else None,
        "deleted_at": row.deleted_at,
    }


def _company(row: Company) -> dict[str, Any]:
    return _common(row) | {"name": row.name, "domain": row.domain, "deleted_at": row.deleted_at}


SnapshotEvents = dict[str, type[EventData]]
SNAPSHOTS: dict[type[Any], tuple[Callable[[Any], dict[str, Any]], SnapshotEvents]] = {
    Lead: (
        _lead,
        {"created": LeadCreated, "updated": LeadUpdated, "owner_changed": LeadUpdated,
         "deleted": LeadDeleted, "restored": LeadRestored},
    ),
    Deal: (
        _deal,
        {"created": DealCreated, "updated": DealUpdated, "owner_changed": DealUpdated,
         "deleted": DealDeleted, "restored": DealRestored},
    ),
    Contact: (
        _contact,
        {"created": ContactCreated, "updated": ContactUpdated, "deleted": ContactDeleted,
         "restored": ContactRestored},
    ),
    Company: (
        _company,
        {"created": CompanyCreated, "updated": CompanyUpdated, "deleted": CompanyDeleted,
         "restored": CompanyRestored},
    ),
}  # fmt: skip


def _snapshot_event(entry: Entry) -> EventData | None:
    if isinstance(entry.row, User):
        user = entry.row
        model = UserCreated if entry.action == "created" else UserUpdated
        return model(
            id=user.id,
            version=user.version,
            org_id=user.org_id,
            email=user.email,
            name=user.name,
            role=user.role,
            team_ids=user.team_ids,
            active=user.active,
        )
    if isinstance(entry.row, Team):
        team = entry.row
        team_model = {"created": TeamCreated, "archived": TeamArchived}.get(
            entry.action, TeamUpdated
        )
        return team_model(
            id=team.id,
            version=team.version,
            org_id=team.org_id,
            name=team.name,
            archived=team.archived_at is not None,
        )
    if isinstance(entry.row, Note):
        return _note_event(entry.row, entry.action)
    snapshot = SNAPSHOTS.get(type(entry.row))
    if snapshot is None:
        return None
    describe, models = snapshot
    values = describe(entry.row)
    event_model = models[entry.action]
    if event_model in {LeadUpdated, DealUpdated, ContactUpdated, CompanyUpdated}:
        values["changed"] = sorted(entry.changes)
    return event_model(**values)


def _note_event(note: Note, action: str) -> EventData:
    record = Link(type=RecordType(note.record_type), id=str(note.record_id))
    deleted = note.deleted_at is not None
    model = {"note_added": NoteCreated, "note_deleted": NoteDeleted}.get(action, NoteUpdated)
    return model(
        id=str(note.id),
        version=note.version,
        org_id=note.org_id,
        record=record,
        author_id=note.author_id,
        kind=note.kind,
        body=note.body,
        created_at=note.created_at,
        updated_at=note.updated_at,
        deleted_at=note.deleted_at,
        timeline=TimelineProjection(
            kind=ItemKind.NOTE,
            occurred_at=note.created_at,
            title="Call" if note.kind == "call" else "Note",
            summary=None if deleted else note.body[:4000],
            links=[record],
            source=TimelineSource(service="crm", key=f"crm:note:{note.id}"),
            status="deleted" if deleted else None,
            actor_id=note.author_id,
            version=note.version,
        ),
    )


def _summary(changes: Changes) -> str | None:
    if not changes:
        return None
    parts = [f"{name}: {_show(old)} → {_show(new)}" for name, (old, new) in sorted(changes.items())]
    return "; ".join(parts)[:4000]


def _show(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "—"
    return str(value)


def _audit_event(
    entry: Entry, entry_id: str, actor_id: str, occurred_at: datetime, changes: dict[str, Any]
) -> AuditRecorded:
    record = Link(type=RecordType(entry.record_type), id=entry.record_id)
    label = LABELS[entry.record_type]
    summarized = entry.action in {"updated", "owner_changed"} or entry.action.startswith("member_")
    summary = _summary(entry.changes) if summarized else None
    if entry.reason:
        summary = f"{summary} ({entry.reason})" if summary else entry.reason
    return AuditRecorded(
        id=entry_id,
        record=record,
        action=entry.action,
        actor_id=actor_id,
        changes=changes,
        occurred_at=occurred_at,
        reason=entry.reason,
        timeline=TimelineProjection(
            kind=ItemKind.AUDIT,
            occurred_at=occurred_at,
            title=ACTION_TITLES.get(entry.action, "{label} " + entry.action).format(label=label),
            summary=summary[:4000] if summary else None,
            links=[record],
            source=TimelineSource(service="crm", key=f"crm:audit:{entry_id}"),
            actor_id=actor_id,
        ),
    )


def _parent(session: Session, record_type: str, record_id: str) -> Lead | Deal:
    """The lead or deal a member change belongs to, which the same flush must have touched:
    its version orders its access lists."""
    model = Lead if record_type == "lead" else Deal
    for obj in session.dirty:
        if isinstance(obj, model) and str(obj.id) == record_id:
            return obj
    raise RuntimeError(f"a member change of {record_type} {record_id} must bump its version")


def _record_audit(session: Session, _flush: UOWTransaction) -> None:
    entries = _entries(session)
    if not entries:
        return
    actor: Actor | None = session.info.get(ACTOR_KEY)
    if actor is None:
        raise PermissionError("an audited change needs an actor: call act_as first")
    reasons: dict[str, OwnerChangeContext] = session.info.get(REASONS_KEY, {})
    occurred_at = actor.clock.now()
    request_id = request_id_var.get()
    rows: list[dict[str, Any]] = []
    events: list[EventData] = []
    access_changed: dict[str, Lead | Deal] = {}
    access_cause: dict[str, str] = {}  # record id → the audit entry that changed its access
    for entry in entries:
        if entry.org_id != actor.org_id:
            raise PermissionError("a change may only touch the actor's own org")
        context = reasons.pop(entry.record_id, None) if entry.action == "owner_changed" else None
        entry.reason = context.reason if context else None
        entry_uuid = new_id()
        entry_id = str(entry_uuid)
        jsonable: dict[str, Any] = to_jsonable_python(entry.changes)
        rows.append(
            {
                "id": entry_uuid,
                "org_id": entry.org_id,
                "record_type": entry.record_type,
                "record_id": entry.record_id,
                "action": entry.action,
                "actor_id": actor.user_id,
                "changes": jsonable,
                "occurred_at": occurred_at,
                "request_id": request_id,
                "reason": entry.reason,
                "caused_by": session.info.get(CAUSE_KEY),
            }
        )
        snapshot = _snapshot_event(entry)
        if snapshot is not None:
            events.append(snapshot)
        if entry.record_type in LABELS:
            events.append(_audit_event(entry, entry_id, actor.user_id, occurred_at, jsonable))
        if isinstance(entry.row, RecordMember):
            parent = _parent(session, entry.record_type, entry.record_id)
            access_changed[entry.record_id] = parent
            access_cause.setdefault(entry.record_id, entry_id)
        elif isinstance(entry.row, Lead | Deal):
            if entry.action != "updated" or ACCESS_FIELDS & entry.changes.keys():
                access_changed[entry.record_id] = entry.row
                access_cause[entry.record_id] = entry_id  # the record's own entry first
            if entry.action == "owner_changed":
                record = entry.row
                owner_model = LeadOwnerChanged if isinstance(record, Lead) else DealOwnerChanged
                previous, new_owner = entry.changes["owner_id"]
                events.append(
                    owner_model(
                        id=str(record.id),
                        version=record.version,
                        org_id=record.org_id,
                        previous_owner_id=previous,
                        new_owner_id=new_owner,
                        reason=entry.reason,
                        changed_by=actor.user_id,
                        previous_owner_kept_as=context.previous_owner_kept_as if context else None,
                        occurred_at=occurred_at,
                    )
                )
    connection = session.connection()
    connection.execute(AuditEntry.__table__.insert(), rows)  # type: ignore[attr-defined]
    for record_id, record in access_changed.items():
        record_type = "lead" if isinstance(record, Lead) else "deal"
        access = access_of(record, _members(session, record_type, record.id))
        events.append(access.model_copy(update={"audit_id": access_cause.get(record_id)}))
    add_events(
        connection,
        outbox,
        [
            new_event(data, org_id=actor.org_id, actor_id=actor.user_id, time=occurred_at)
            for data in events
        ],
    )


def _refuse_bulk_writes(state: ORMExecuteState) -> None:
    statement = state.statement
    if isinstance(statement, Update | Delete) and statement.table in AUDITED_TABLES:
        raise PermissionError("audited tables are changed row by row, through the session")


def install_audit_listeners() -> None:
    """Hook the audit into every session (idempotent). Objects of other services' models pass
    through untouched: only CRM's audited models are looked at."""
    if not event.contains(Session, "after_flush", _record_audit):
        event.listen(Session, "after_flush", _record_audit)
        event.listen(Session, "do_orm_execute", _refuse_bulk_writes)


# Importing the audit (every CRM service does) hooks it in: no session can skip it.
install_audit_listeners()
