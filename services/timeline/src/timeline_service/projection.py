"""Every event carrying a timeline projection becomes (or updates) one copy of one item,
generically: a new producer needs no change here. Copies with one identity are one item; the item
attaches to its copies' explicit links and, through the participant index, to the contacts whose
addresses take part and to their open leads and deals.
"""

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from sqlalchemy import (
    ARRAY,
    String,
    Text,
    Uuid,
    and_,
    any_,
    bindparam,
    cast,
    delete,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
    union,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from pipedesk_common.access import AccessCause
from pipedesk_common.clock import Clock
from pipedesk_common.consumer import Consumer
from pipedesk_common.events import Event, registered_types
from pipedesk_common.events.crm import (
    CompanyCreated,
    CompanyDeleted,
    CompanyRestored,
    CompanySnapshot,
    CompanyUpdated,
    ContactCreated,
    ContactDeleted,
    ContactRestored,
    ContactSnapshot,
    ContactUpdated,
    DealCreated,
    DealDeleted,
    DealRestored,
    DealSnapshot,
    DealUpdated,
    LeadCreated,
    LeadDeleted,
    LeadRestored,
    LeadSnapshot,
    LeadUpdated,
)
from pipedesk_common.events.timeline import (
    GONE_STATUSES,
    REMOVED_STATUS,
    TimelineCarrier,
    TimelineProjection,
)
from pipedesk_common.ids import new_id
from timeline_service.models import (
    AccessVersion,
    ContactEmail,
    CrmRecord,
    ItemHolder,
    RecordContact,
    RecordVersion,
    TimelineItem,
    TimelineLink,
)

CHANGES_CHANNEL = "timeline_changes"

# A lead stops gaining matched items once converted or disqualified, a deal once won or lost.
CLOSED_LEAD_STATUSES = frozenset({"converted", "disqualified"})
CLOSED_DEAL_STAGES = frozenset({"won", "lost"})

Record = tuple[str, str]  # (record_type, record_id)
# Records whose timelines show an item depending on its other links (see repository.py).
ORG_READABLE_RECORDS = frozenset({"contact", "company"})


def timeline_event_models() -> list[type[Any]]:
    """The contracts whose data carries a ``timeline`` projection."""
    return [
        event_type.model
        for event_type in registered_types().values()
        if "timeline" in event_type.model.model_fields
    ]


# -- versions and change notifications ---------------------------------------------------------


def _touch_record() -> Any:
    """The record's version bumped, the items' links to it stamped with the new version, and
    the change notified at commit (``notify``'s payload): one statement, one round trip."""
    table = RecordVersion.__table__  # type: ignore[attr-defined]
    links = TimelineLink.__table__  # type: ignore[attr-defined]
    org_id = bindparam("b_org_id", type_=String())
    record_type = bindparam("b_record_type", type_=String())
    record_id = bindparam("b_record_id", type_=String())
    bump = insert(table).values(
        org_id=org_id, record_type=record_type, record_id=record_id, version=1
    )
    bumped = (
        bump.on_conflict_do_update(
            index_elements=["org_id", "record_type", "record_id"],
            set_={"version": table.c.version + 1},
        )
        .returning(table.c.version)
        .cte("bumped")
    )
    stamped = (
        update(links)
        .where(
            links.c.org_id == org_id,
            links.c.record_type == record_type,
            links.c.record_id == record_id,
            links.c.item_id == any_(bindparam("b_item_ids", type_=ARRAY(Uuid()))),
        )
        .values(change_version=select(bumped.c.version).scalar_subquery())
        .cte("stamped")
    )
    payload = func.json_build_array(org_id, record_type, record_id, bumped.c.version)
    return select(bumped.c.version, func.pg_notify(CHANGES_CHANNEL, cast(payload, Text))).add_cte(
        stamped
    )


# Built once (each projected event runs it for every record it changes), and on the tables
# rather than the ORM entities: no session object is ever synchronised with them.
_TOUCH_RECORD = _touch_record()


async def touch(
    session: AsyncSession, org_id: str, records: Iterable[Record], item_ids: Sequence[UUID]
) -> None:
    """Bump each record's version (its row lock orders concurrent writers, so versions follow
    commit order), stamp the items' links to it, and notify listeners at commit."""
    for record_type, record_id in sorted(set(records)):
        await session.execute(
            _TOUCH_RECORD,
            {
                "b_org_id": org_id,
                "b_record_type": record_type,
                "b_record_id": record_id,
                "b_item_ids": list(item_ids),
            },
        )


async def bump_access_version(
    session: AsyncSession,
    org_id: str,
    record_type: str,
    record_id: str,
    cause: AccessCause | None = None,
) -> None:
    """The replica learned an access list: new ETags for the org, and the record's open streams
    check again whether their viewers may still read it (whatever ``cause`` changed it)."""
    table = AccessVersion.__table__  # type: ignore[attr-defined]
    statement = insert(table).values(org_id=org_id, version=1)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["org_id"], set_={"version": table.c.version + 1}
        )
    )
    await notify(session, org_id, record_type, record_id, None)


async def notify(
    session: AsyncSession, org_id: str, record_type: str, record_id: str, version: int | None
) -> None:
    """Wake, at commit, the streams of this record in every timeline process."""
    payload = json.dumps([org_id, record_type, record_id, version])
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": CHANGES_CHANNEL, "payload": payload},
    )


# -- matching ----------------------------------------------------------------------------------


MatchingSubject = tuple[str, str]  # (kind, value): ("source", key), ("contact", id), …

# Each event's handler holds its org's lock shared (so the lifecycle's erasures, which take it
# exclusively, wait for and hold off every write of the org) and, exclusively, a lock per thing
# it matches through: the copy's source key and identity, the contact or record, and each email
# address. Two orgs, and unrelated records of one org, never wait on each other.
_LOCKS = text(
    "SELECT count(*) FROM ("
    " SELECT pg_advisory_xact_lock_shared(hashtextextended(:org, 0))"
    " UNION ALL"
    " SELECT pg_advisory_xact_lock(hashtextextended(key, 0))"
    " FROM unnest(CAST(:keys AS text[])) AS key"
    ") AS taken"
)


def _org_lock_key(org_id: str) -> str:
    return f"timeline.matching:{org_id}"


async def lock_org(session: AsyncSession, org_id: str) -> None:
    """Wait for every write of the org's matching in flight and hold off the next ones until the
    transaction ends: the org's lock, exclusively."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": _org_lock_key(org_id)},
    )


async def lock_matching(
    session: AsyncSession,
    org_id: str,
    *,
    subjects: Iterable[MatchingSubject] = (),
    emails: Iterable[str] = (),
) -> None:
    """Serialize the writes that match items to contacts through the same things: an item and
    the contact address that matches it, handled at the same moment, would otherwise each miss
    the other. Subjects (the copy's source and identity, a contact, a record) are taken before
    addresses, each kind in sorted order, so two handlers never wait on each other in a cycle;
    a handler that learns more addresses later takes them in a call of their own."""
    org = _org_lock_key(org_id)
    keys = [f"{org}:{kind}:{value}" for kind, value in sorted(set(subjects))]
    keys += [f"{org}:email:{email}" for email in sorted(set(emails))]
    await session.execute(_LOCKS, {"org": org, "keys": keys})


def _live_contacts_of(org_id: str, emails: Sequence[str]) -> Any:
    return (
        select(col(ContactEmail.contact_id))
        .join(
            CrmRecord,
            and_(
                col(CrmRecord.org_id) == col(ContactEmail.org_id),
                col(CrmRecord.record_type) == "contact",
                col(CrmRecord.record_id) == col(ContactEmail.contact_id),
            ),
        )
        .where(
            col(ContactEmail.org_id) == org_id,
            col(ContactEmail.email).in_(emails),
            col(CrmRecord.deleted).is_(False),
        )
    )


async def matched_records(session: AsyncSession, org_id: str, emails: Sequence[str]) -> set[Record]:
    """The contacts having one of ``emails`` and their open, live leads and deals."""
    if not emails:
        return set()
    contacts = _live_contacts_of(org_id, emails).subquery()
    contact_rows = select(literal("contact"), contacts.c.contact_id)
    record_rows = (
        select(col(RecordContact.record_type), col(RecordContact.record_id))
        .join(
            CrmRecord,
            and_(
                col(CrmRecord.org_id) == col(RecordContact.org_id),
                col(CrmRecord.record_type) == col(RecordContact.record_type),
                col(CrmRecord.record_id) == col(RecordContact.record_id),
            ),
        )
        .where(
            col(RecordContact.org_id) == org_id,
            col(RecordContact.contact_id).in_(select(contacts.c.contact_id)),
            col(CrmRecord.open).is_(True),
            col(CrmRecord.deleted).is_(False),
        )
    )
    rows = await session.execute(union(contact_rows, record_rows))
    return {(str(kind), str(ident)) for kind, ident in rows}


async def _closed_records(session: AsyncSession, org_id: str, records: set[Record]) -> set[Record]:
    if not records:
        return set()
    rows = await session.execute(
        select(col(CrmRecord.record_type), col(CrmRecord.record_id)).where(
            col(CrmRecord.org_id) == org_id,
            tuple_(col(CrmRecord.record_type), col(CrmRecord.record_id)).in_(sorted(records)),
            or_(col(CrmRecord.open).is_(False), col(CrmRecord.deleted).is_(True)),
        )
    )
    return {(kind, ident) for kind, ident in rows}


# -- items ---------------------------------------------------------------------------------------

# What ``_copy_values`` gives of a copy: the holder's columns besides its org, item and time.
COPY_COLUMNS = (
    "source_key",
    "owner_id",
    "private",
    "sharing",
    "held",
    "version",
    "event_id",
    "changed_at",
    "kind",
    "occurred_at",
    "title",
    "summary",
    "participants",
    "status",
    "actor_id",
    "source_service",
    "google_id",
    "url",
    "recurrence",
    "links",
)


def _bound(table: Any, names: Iterable[str]) -> dict[str, Any]:
    """A bound parameter ``b_<name>`` of each column, typed as the column."""
    return {name: bindparam(f"b_{name}", type_=table.c[name].type) for name in names}


def _held_copy() -> Any:
    holders = ItemHolder.__table__  # type: ignore[attr-defined]
    return select(holders.c.item_id, holders.c.version).where(
        holders.c.org_id == bindparam("b_org_id"),
        holders.c.source_key == bindparam("b_source_key"),
    )


def _upsert_holder() -> Any:
    holders = ItemHolder.__table__  # type: ignore[attr-defined]
    statement = insert(holders).values(
        **_bound(holders, ("org_id", "item_id", "updated_at", *COPY_COLUMNS))
    )
    return statement.on_conflict_do_update(
        index_elements=["org_id", "source_key"],
        set_={name: statement.excluded[name] for name in ("item_id", "updated_at", *COPY_COLUMNS)},
    )


def _item_of_identity() -> Any:
    items = TimelineItem.__table__  # type: ignore[attr-defined]
    return select(items.c.id).where(
        items.c.org_id == bindparam("b_org_id"), items.c.identity == bindparam("b_identity")
    )


def _new_item() -> Any:
    items = TimelineItem.__table__  # type: ignore[attr-defined]
    return insert(items).values(**_bound(items, ("id", "org_id", "identity", "occurred_at")))


def _upsert_link() -> Any:
    links = TimelineLink.__table__  # type: ignore[attr-defined]
    statement = insert(links).values(
        **_bound(
            links, ("item_id", "record_type", "record_id", "org_id", "occurred_at", "explicit")
        )
    )
    return statement.on_conflict_do_update(
        index_elements=["item_id", "record_type", "record_id"],
        set_={
            "occurred_at": statement.excluded.occurred_at,
            "explicit": statement.excluded.explicit,
        },
    )


# Built once, as ``touch``'s: every projected event runs them, and building them (a holder's
# twenty-odd values, an item's links as one multi-row VALUES, which is compiled anew each time)
# cost more CPU than running them.
_HELD_COPY = _held_copy()
_UPSERT_HOLDER = _upsert_holder()
_ITEM_OF_IDENTITY = _item_of_identity()
_NEW_ITEM = _new_item()
_UPSERT_LINK = _upsert_link()


async def project(session: AsyncSession, event: Event[Any], clock: Clock) -> None:
    """Record the copy the projection describes, if newer than the one held, and bring its item
    (and the item it leaves, if its identity moved it) up to date: its records change once."""
    projection: TimelineProjection = event.data.timeline
    org_id = event.org_id
    subjects = [("source", projection.source.key)]
    if projection.identity is not None:
        subjects.append(("identity", projection.identity))
    await lock_matching(session, org_id, subjects=subjects)
    held = (
        await session.execute(
            _HELD_COPY, {"b_org_id": org_id, "b_source_key": projection.source.key}
        )
    ).first()
    if held is not None and held.version >= projection.version:
        return  # an older (or the same) version of a copy we already have
    previous_item = held.item_id if held is not None else None
    now = clock.now()
    item_id, created = await _item_for(session, org_id, projection, previous_item)
    copy = _copy_values(event, projection)
    await session.execute(
        _UPSERT_HOLDER,
        {f"b_{name}": value for name, value in copy.items()}
        | {"b_org_id": org_id, "b_item_id": item_id, "b_updated_at": now},
    )
    changed = {item_id} | ({previous_item} if previous_item is not None else set())
    await _lock_items(session, org_id, sorted(changed - {created}), copy["participants"])
    records: set[Record] = set()
    for changed_item in sorted(changed):
        # A new item is this copy alone, with no links yet: nothing to read back.
        alone = CopyState.of(copy) if changed_item == created else None
        records |= await refresh_item(session, org_id, changed_item, alone)
    await touch(session, org_id, records, sorted(changed))


async def _lock_items(
    session: AsyncSession, org_id: str, item_ids: Sequence[UUID], participants: Sequence[str]
) -> None:
    """Before items are derived again: the rows of those that existed (so their copies are read
    as of the last writer's commit), then every address any of their copies, or the new copy,
    has (so the contacts they match are)."""
    emails = set(participants)
    if item_ids:
        items = TimelineItem.__table__  # type: ignore[attr-defined]
        holders = ItemHolder.__table__  # type: ignore[attr-defined]
        # NO KEY UPDATE: a contact's handler attaching links to the item (whose foreign key
        # takes KEY SHARE) is not held up.
        await session.execute(
            select(items.c.id)
            .where(items.c.id.in_(item_ids))
            .order_by(items.c.id)
            .with_for_update(key_share=True)
        )
        rows = await session.scalars(
            select(func.unnest(holders.c.participants)).where(holders.c.item_id.in_(item_ids))
        )
        emails.update(rows)
    if emails:
        await lock_matching(session, org_id, emails=emails)


class CopyState(NamedTuple):
    """What an item is derived from, of each of its copies."""

    held: bool
    changed_at: datetime
    source_key: str
    occurred_at: datetime
    participants: list[str]
    links: list[list[str]]
    status: str | None

    @classmethod
    def of(cls, values: dict[str, Any]) -> "CopyState":
        return cls(**{name: values[name] for name in cls._fields})


def _copy_values(event: Event[Any], projection: TimelineProjection) -> dict[str, Any]:
    visibility = projection.visibility
    return {
        "source_key": projection.source.key,
        "owner_id": visibility.owner_id,
        "private": visibility.private,
        "sharing": visibility.sharing,
        "held": projection.status not in GONE_STATUSES,
        "version": projection.version,
        "event_id": event.id,
        "changed_at": event.time,
        "kind": projection.kind.value,
        "occurred_at": projection.occurred_at,
        "title": projection.title,
        "summary": projection.summary,
        "participants": sorted({email.strip().lower() for email in projection.participants}),
        "status": projection.status,
        "actor_id": projection.actor_id,
        "source_service": projection.source.service,
        "google_id": projection.source.google_id,
        "url": projection.source.url,
        "recurrence": projection.recurrence.model_dump() if projection.recurrence else None,
        "links": sorted([link.type.value, link.id] for link in set(projection.links)),
    }


async def _item_for(
    session: AsyncSession,
    org_id: str,
    projection: TimelineProjection,
    previous_item: UUID | None,
) -> tuple[UUID, UUID | None]:
    """The item the copy belongs to: the org's item of its identity; else the item it was on,
    which takes the identity if it has none yet (written before identities) or is the copy
    alone; else a new item. Returns it and, if it is new, its id again."""
    items = TimelineItem.__table__  # type: ignore[attr-defined]
    holders = ItemHolder.__table__  # type: ignore[attr-defined]
    identity = projection.identity
    if identity is not None:
        found = await session.scalar(
            _ITEM_OF_IDENTITY, {"b_org_id": org_id, "b_identity": identity}
        )
        if found is not None:
            return UUID(str(found)), None
    if previous_item is not None:
        if identity is None:
            return previous_item, None
        others = select(func.count()).where(
            holders.c.item_id == previous_item, holders.c.source_key != projection.source.key
        )
        claimed = await session.scalar(
            update(items)
            .where(
                items.c.id == previous_item,
                or_(items.c.identity.is_(None), others.scalar_subquery() == 0),
            )
            .values(identity=identity)
            .returning(items.c.id)
        )
        if claimed is not None:
            return previous_item, None
    item_id = new_id()
    await session.execute(
        _NEW_ITEM,
        {
            "b_id": item_id,
            "b_org_id": org_id,
            "b_identity": identity,
            "b_occurred_at": projection.occurred_at,
        },
    )
    return item_id, item_id


async def refresh_item(
    session: AsyncSession, org_id: str, item_id: UUID, alone: CopyState | None
) -> set[Record]:
    """Derive the item from its copies (``alone``: a new item's one copy): its time is its newest
    live copy's (the newest copy's once none is live), its explicit links and participants are
    all its copies'. An item no copy belongs to any more leaves every timeline. Returns the
    records whose timelines changed."""
    existing: dict[Record, bool] = {}
    if alone is not None:
        copies = [alone]
    else:
        holders = ItemHolder.__table__  # type: ignore[attr-defined]
        columns = [holders.c[name] for name in CopyState._fields]
        rows = await session.execute(select(*columns).where(holders.c.item_id == item_id))
        copies = [CopyState(*row) for row in rows]
        existing_rows = await session.execute(
            select(
                col(TimelineLink.record_type),
                col(TimelineLink.record_id),
                col(TimelineLink.explicit),
            ).where(col(TimelineLink.item_id) == item_id)
        )
        existing = {(kind, ident): was_explicit for kind, ident, was_explicit in existing_rows}
    if not copies:
        await session.execute(delete(TimelineItem).where(col(TimelineItem.id) == item_id))
        return set(existing)
    if all(copy.status == REMOVED_STATUS for copy in copies):
        # Every holder dropped its copy (a message deleted from every mailbox): it leaves.
        if existing:
            await session.execute(delete(TimelineLink).where(col(TimelineLink.item_id) == item_id))
        return set(existing)
    live = [copy for copy in copies if copy.held] or copies
    occurred_at = max(live, key=lambda copy: (copy.changed_at, copy.source_key)).occurred_at
    if alone is None:
        await session.execute(
            update(TimelineItem)
            .where(col(TimelineItem.id) == item_id, col(TimelineItem.occurred_at) != occurred_at)
            .values(occurred_at=occurred_at)
        )
    explicit = {(kind, ident) for copy in copies for kind, ident in copy.links}
    participants = sorted({email for copy in copies for email in copy.participants})
    matched = await matched_records(session, org_id, participants) - explicit
    # A closed or deleted lead or deal keeps the matched items it had: history is not rewritten.
    earlier_matches = {record for record, was_explicit in existing.items() if not was_explicit}
    kept = await _closed_records(session, org_id, earlier_matches - explicit - matched)
    wanted = dict.fromkeys(explicit, True) | dict.fromkeys(matched | kept, False)
    gone = set(existing) - set(wanted)
    if gone:
        await session.execute(
            delete(TimelineLink).where(
                col(TimelineLink.item_id) == item_id,
                tuple_(col(TimelineLink.record_type), col(TimelineLink.record_id)).in_(
                    sorted(gone)
                ),
            )
        )
    if wanted:
        await session.execute(
            _UPSERT_LINK,
            [
                {
                    "b_item_id": item_id,
                    "b_record_type": record_type,
                    "b_record_id": record_id,
                    "b_org_id": org_id,
                    "b_occurred_at": occurred_at,
                    "b_explicit": is_explicit,
                }
                for (record_type, record_id), is_explicit in sorted(wanted.items())
            ],
        )
    return set(wanted) | gone


async def attach_matching_items(
    session: AsyncSession, org_id: str, emails: Sequence[str], records: Iterable[Record]
) -> None:
    """Backfill: attach the items in which one of ``emails`` takes part (in any copy) to
    ``records``; links that exist already are left alone, so replays add nothing."""
    targets = sorted(set(records))
    if not emails or not targets:
        return
    items = TimelineItem.__table__  # type: ignore[attr-defined]
    holders = ItemHolder.__table__  # type: ignore[attr-defined]
    links = TimelineLink.__table__  # type: ignore[attr-defined]
    taking_part = select(holders.c.item_id).where(
        holders.c.org_id == org_id,
        holders.c.participants.op("&&")(literal(list(emails), type_=ARRAY(Text))),
    )
    touched: dict[Record, set[UUID]] = {}
    for record_type, record_id in targets:
        source = select(
            items.c.id,
            literal(record_type),
            literal(record_id),
            items.c.org_id,
            items.c.occurred_at,
            literal(False),
        ).where(items.c.org_id == org_id, items.c.id.in_(taking_part))
        inserted = await session.execute(
            insert(links)
            .from_select(
                ["item_id", "record_type", "record_id", "org_id", "occurred_at", "explicit"],
                source,
            )
            .on_conflict_do_nothing()
            .returning(links.c.item_id)
        )
        touched.setdefault((record_type, record_id), set()).update(row[0] for row in inserted)
    attached = set().union(*touched.values())
    if attached:
        # What a contact's or company's timeline shows depends on the item's other links.
        others = await session.execute(
            select(links.c.record_type, links.c.record_id, links.c.item_id).where(
                links.c.item_id.in_(sorted(attached)),
                links.c.record_type.in_(sorted(ORG_READABLE_RECORDS)),
            )
        )
        for record_type, record_id, item_id in others:
            touched.setdefault((record_type, record_id), set()).add(item_id)
    for record, item_ids in sorted(touched.items()):
        if item_ids:
            await touch(session, org_id, [record], sorted(item_ids))


# -- the participant index -----------------------------------------------------------------------


def _upsert_crm_record() -> Any:
    table = CrmRecord.__table__  # type: ignore[attr-defined]
    statement = insert(table).values(
        **_bound(table, ("org_id", "record_type", "record_id", "deleted", "open"))
    )
    return statement.on_conflict_do_update(
        index_elements=["org_id", "record_type", "record_id"],
        set_={"deleted": statement.excluded.deleted, "open": statement.excluded.open},
    )


def _forget_record_contacts() -> Any:
    table = RecordContact.__table__  # type: ignore[attr-defined]
    return delete(table).where(
        table.c.org_id == bindparam("b_org_id"),
        table.c.record_type == bindparam("b_record_type"),
        table.c.record_id == bindparam("b_record_id"),
    )


# Built once, on the tables: every lead, deal, contact and company event runs them.
_UPSERT_CRM_RECORD = _upsert_crm_record()
_FORGET_RECORD_CONTACTS = _forget_record_contacts()


async def _upsert_record(
    session: AsyncSession, org_id: str, record: Record, *, deleted: bool, is_open: bool
) -> None:
    await session.execute(
        _UPSERT_CRM_RECORD,
        {
            "b_org_id": org_id,
            "b_record_type": record[0],
            "b_record_id": record[1],
            "b_deleted": deleted,
            "b_open": is_open,
        },
    )


async def _emails_of_contacts(
    session: AsyncSession, org_id: str, contact_ids: Sequence[str]
) -> list[str]:
    if not contact_ids:
        return []
    rows = await session.scalars(
        select(col(ContactEmail.email))
        .join(
            CrmRecord,
            and_(
                col(CrmRecord.org_id) == col(ContactEmail.org_id),
                col(CrmRecord.record_type) == "contact",
                col(CrmRecord.record_id) == col(ContactEmail.contact_id),
            ),
        )
        .where(
            col(ContactEmail.org_id) == org_id,
            col(ContactEmail.contact_id).in_(contact_ids),
            col(CrmRecord.deleted).is_(False),
        )
    )
    return sorted(set(rows))


async def on_contact(session: AsyncSession, event: Event[Any]) -> None:
    contact: ContactSnapshot = event.data
    org_id = event.org_id
    deleted = contact.deleted_at is not None
    emails = sorted({email.strip().lower() for email in contact.emails if email.strip()})
    # Its addresses now, the ones it gains: an address it loses may still match an item being
    # written, as it would have an instant earlier.
    await lock_matching(
        session, org_id, subjects=[("contact", contact.id)], emails=[] if deleted else emails
    )
    await _upsert_record(session, org_id, ("contact", contact.id), deleted=deleted, is_open=True)
    await session.execute(
        delete(ContactEmail).where(
            col(ContactEmail.org_id) == org_id, col(ContactEmail.contact_id) == contact.id
        )
    )
    if deleted or not emails:
        return
    table = ContactEmail.__table__  # type: ignore[attr-defined]
    await session.execute(
        insert(table)
        .values([{"org_id": org_id, "email": email, "contact_id": contact.id} for email in emails])
        .on_conflict_do_nothing()
    )
    open_records = await session.execute(
        select(col(RecordContact.record_type), col(RecordContact.record_id))
        .join(
            CrmRecord,
            and_(
                col(CrmRecord.org_id) == col(RecordContact.org_id),
                col(CrmRecord.record_type) == col(RecordContact.record_type),
                col(CrmRecord.record_id) == col(RecordContact.record_id),
            ),
        )
        .where(
            col(RecordContact.org_id) == org_id,
            col(RecordContact.contact_id) == contact.id,
            col(CrmRecord.open).is_(True),
            col(CrmRecord.deleted).is_(False),
        )
    )
    targets = {("contact", contact.id)} | {(kind, ident) for kind, ident in open_records}
    await attach_matching_items(session, org_id, emails, targets)


async def _on_record_with_contacts(
    session: AsyncSession,
    org_id: str,
    record: Record,
    contact_ids: list[str],
    *,
    deleted: bool,
    is_open: bool,
) -> None:
    contacts = sorted(set(contact_ids))
    await lock_matching(
        session,
        org_id,
        subjects=[("record", f"{record[0]}:{record[1]}")]
        + [("contact", contact) for contact in contacts],
    )
    await _upsert_record(session, org_id, record, deleted=deleted, is_open=is_open)
    await session.execute(
        _FORGET_RECORD_CONTACTS,
        {"b_org_id": org_id, "b_record_type": record[0], "b_record_id": record[1]},
    )
    if contacts:
        table = RecordContact.__table__  # type: ignore[attr-defined]
        await session.execute(
            insert(table).values(
                [
                    {
                        "org_id": org_id,
                        "record_type": record[0],
                        "record_id": record[1],
                        "contact_id": contact,
                    }
                    for contact in contacts
                ]
            )
        )
    if is_open and not deleted:
        emails = await _emails_of_contacts(session, org_id, contacts)
        if emails:
            # Its contacts' locks hold their addresses still: these are the ones to match.
            await lock_matching(session, org_id, emails=emails)
        await attach_matching_items(session, org_id, emails, [record])


async def on_lead(session: AsyncSession, event: Event[Any]) -> None:
    lead: LeadSnapshot = event.data
    await _on_record_with_contacts(
        session,
        event.org_id,
        ("lead", lead.id),
        lead.contact_ids,
        deleted=lead.deleted_at is not None,
        is_open=lead.status not in CLOSED_LEAD_STATUSES,
    )


async def on_deal(session: AsyncSession, event: Event[Any]) -> None:
    deal: DealSnapshot = event.data
    await _on_record_with_contacts(
        session,
        event.org_id,
        ("deal", deal.id),
        deal.contact_ids,
        deleted=deal.deleted_at is not None,
        is_open=deal.stage not in CLOSED_DEAL_STAGES,
    )


async def on_company(session: AsyncSession, event: Event[Any]) -> None:
    company: CompanySnapshot = event.data
    await _upsert_record(
        session,
        event.org_id,
        ("company", company.id),
        deleted=company.deleted_at is not None,
        is_open=True,
    )


def subscribe_projection(consumer: Consumer, clock: Clock) -> None:
    async def on_projection(session: AsyncSession, event: Event[Any]) -> None:
        await project(session, event, clock)

    for model in timeline_event_models():
        consumer.on(model)(on_projection)
    # A producer whose contract this process does not know yet still reaches the timeline.
    consumer.on_unregistered(TimelineCarrier)(on_projection)
    for contact_model in (ContactCreated, ContactUpdated, ContactDeleted, ContactRestored):
        consumer.on(contact_model)(on_contact)
    for lead_model in (LeadCreated, LeadUpdated, LeadDeleted, LeadRestored):
        consumer.on(lead_model)(on_lead)
    for deal_model in (DealCreated, DealUpdated, DealDeleted, DealRestored):
        consumer.on(deal_model)(on_deal)
    for company_model in (CompanyCreated, CompanyUpdated, CompanyDeleted, CompanyRestored):
        consumer.on(company_model)(on_company)
