"""The inbox of a consuming service: what makes an at-least-once delivery have its effect once.

Two tables, in the service's schema: ``inbox`` (the ids of the events each consumer applied) and
``entity_versions`` (per consumer and entity, the highest version applied). ``admit`` runs in the
transaction that applies an event: a duplicate delivery or an older version than the one applied
is refused there, and the inbox row commits, or not, with the event's effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Uuid,
    bindparam,
    func,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pipedesk_common.events import Event, VersionedData

Admission = Literal["new", "duplicate", "stale"]


@dataclass(frozen=True)
class InboxTables:
    inbox: Table
    versions: Table


def inbox_tables(metadata: MetaData) -> InboxTables:  # pragma: no mutate block
    """The inbox and entity-version tables of a consuming service, in its schema."""
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer", String(200), nullable=False),
        Column("event_id", Uuid, nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("consumer", "event_id"),
    )
    versions = Table(
        "entity_versions",
        metadata,
        Column("consumer", String(200), nullable=False),
        Column("entity", String(200), nullable=False),
        Column("key", String(300), nullable=False),
        Column("version", Integer, nullable=False),
        PrimaryKeyConstraint("consumer", "entity", "key"),
    )
    return InboxTables(inbox=inbox, versions=versions)


@dataclass(frozen=True)
class _Admission:
    first_time: Any  # the event's id recorded, returned only the first time
    newer: Any  # the entity's version raised, returned only if it was lower


_ADMISSIONS: dict[int, tuple[InboxTables, _Admission]] = {}


def _admission_statements(tables: InboxTables) -> _Admission:
    """``admit``'s two statements for ``tables``, built once: each event runs them, and
    building them (and their cache keys) anew cost more CPU than running them."""
    known = _ADMISSIONS.get(id(tables))
    if known is not None and known[0] is tables:
        return known[1]
    inbox, versions = tables.inbox, tables.versions
    first_time = (
        insert(inbox)
        .values(consumer=bindparam("b_consumer"), event_id=bindparam("b_event_id"))
        .on_conflict_do_nothing()
        .returning(inbox.c.event_id)
    )
    newer = (
        insert(versions)
        .values(
            consumer=bindparam("b_consumer"),
            entity=bindparam("b_entity"),
            key=bindparam("b_key"),
            version=bindparam("b_version"),
        )
        .on_conflict_do_update(
            index_elements=["consumer", "entity", "key"],
            set_={"version": bindparam("b_version")},
            where=versions.c.version < bindparam("b_version"),
        )
        .returning(versions.c.version)
    )
    statements = _Admission(first_time, newer)
    _ADMISSIONS[id(tables)] = (tables, statements)
    return statements


async def admit(
    session: AsyncSession, tables: InboxTables, consumer: str, event: Event[Any]
) -> Admission:
    """Record ``event`` as applied by ``consumer`` in the session's transaction: ``new`` if it is
    to be applied, ``duplicate`` if it already was, ``stale`` if a newer version of its entity
    was (then only its id is recorded)."""
    statements = _admission_statements(tables)
    first_time = await session.scalar(
        statements.first_time, {"b_consumer": consumer, "b_event_id": event.id}
    )
    if first_time is None:
        return "duplicate"
    data = event.data
    if isinstance(data, VersionedData):
        newer = await session.scalar(
            statements.newer,
            {
                "b_consumer": consumer,
                "b_entity": f"{event.type.service}.{event.type.entity}",
                "b_key": data.version_key(),
                "b_version": data.version,
            },
        )
        if newer is None:
            return "stale"
    return "new"


async def prune(
    sessionmaker: async_sessionmaker[AsyncSession],
    tables: InboxTables,
    consumer: str,
    retention: timedelta,
) -> int:
    """Forget ``consumer``'s processed event ids older than ``retention`` (far longer than any
    redelivery takes); entity versions are kept, so even then an old version stays ignored."""
    inbox = tables.inbox
    async with sessionmaker() as session, session.begin():
        result = await session.execute(
            inbox.delete().where(
                inbox.c.consumer == consumer, inbox.c.processed_at < func.now() - retention
            )
        )
    return int(getattr(result, "rowcount", 0) or 0)
