"""The mirror writer: one way to bring a mirrored row up to what Google said, and announce it.

Every path that learns about a resource — our own API's answers and sync pages alike — goes
through ``MirrorWriter.apply``, so a change is announced once however many paths see it:

- a resource the mirror does not hold is inserted (``ON CONFLICT DO NOTHING``: of two concurrent
  writers one inserts, and only that one announces the creation); one already gone is skipped;
- a held row changes only for a newer version (another ETag, an ``updated`` not older than the
  stored one) or other links, and then gets the next ``version``; the same version seen again
  changes and announces nothing;
- a row held without a Google id (a create in progress, for APIs that take no client ids) takes
  the resource as its first version;
- what is announced, if anything, is the service's decision (``MirrorRules.kind``), written to
  the outbox in the same transaction;
- rows PipeDesk stops keeping while Google still holds them (an org's retention) leave through
  ``remove``: each copy announced as dropped by its holder (timeline status ``removed``), then
  deleted with its links.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar
from uuid import UUID

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pipedesk_common.clock import Clock
from pipedesk_common.events import Event, VersionedData, new_event
from pipedesk_common.events.timeline import REMOVED_STATUS, Link, TimelineProjection
from pipedesk_common.ids import new_id
from pipedesk_common.mirror.links import RecordLinks, ordered
from pipedesk_common.outbox import add_events_to


class MirroredRow(Protocol):
    """What the writer needs of a service's mirrored row (a SQLModel table class)."""

    id: UUID
    org_id: str
    etag: str | None
    google_updated: datetime | None
    version: int
    updated_at: datetime

    @property
    def google_id(self) -> str | None: ...


class SeenResource(Protocol):
    """What the writer needs of a Google resource (a ``GoogleResource``)."""

    @property
    def id(self) -> str: ...

    @property
    def etag(self) -> str | None: ...

    @property
    def updated(self) -> datetime | None: ...


class Parent(Protocol):
    """The row a resource belongs to (a calendar, a task list)."""

    @property
    def id(self) -> UUID: ...


R = TypeVar("R", bound=MirroredRow)
P = TypeVar("P", bound=Parent)
G = TypeVar("G", bound=SeenResource)
R_contra = TypeVar("R_contra", bound=MirroredRow, contravariant=True)
P_contra = TypeVar("P_contra", bound=Parent, contravariant=True)
G_contra = TypeVar("G_contra", bound=SeenResource, contravariant=True)
Before = Mapping[str, Any]


class MirrorRules(Protocol[R_contra, P_contra, G_contra]):
    """What only the service knows about its mirror."""

    def gone(self, resource: G_contra) -> bool:
        """Google describes it as deleted (or cancelled): never inserted."""
        ...

    def values(
        self, parent: P_contra, resource: G_contra, stored: R_contra | None
    ) -> dict[str, Any] | None:
        """The row's columns for ``resource`` (``stored``: the row before; None: a new row).
        None when it cannot be mirrored."""
        ...

    def kind(self, before: Before | None, row: R_contra) -> type[VersionedData] | None:
        """What to announce: ``before`` is the row's columns before the change (None: it is
        new to the mirror); None announces nothing."""
        ...

    def snapshot(
        self, parent: P_contra, row: R_contra, links: Sequence[Link], actor_id: str | None
    ) -> dict[str, Any]:
        """The announced event's data (its kind is ``kind``'s)."""
        ...


def is_newer(stored: MirroredRow, resource: SeenResource) -> bool:
    """Google's version is not the one stored (another ETag) and not older than it."""
    if resource.etag is not None and resource.etag == stored.etag:
        return False
    incoming, held = resource.updated, stored.google_updated
    return not (incoming and held and incoming < held)


class MirrorWriter(Generic[R, P, G]):
    def __init__(
        self,
        model: type[R],
        *,
        parent_key: str,
        links: RecordLinks,
        outbox: Table,
        clock: Clock,
        rules: MirrorRules[R, P, G],
    ) -> None:
        self.model = model
        self.table: Table = model.__table__  # type: ignore[attr-defined]
        self.parent_key = parent_key
        self.links = links
        self.outbox = outbox
        self.clock = clock
        self.rules = rules
        # Built once: a row's values are the statement's parameters, not part of it.
        self._insert_row = (
            insert(model)
            .on_conflict_do_nothing(index_elements=[parent_key, "google_id"])
            .returning(model)
        )

    async def find(self, session: AsyncSession, parent: P, google_id: str) -> R | None:
        """The mirrored row of a Google id, locked for the change."""
        query = (
            select(self.model)
            .where(
                self.table.c[self.parent_key] == parent.id,
                self.table.c.google_id == google_id,
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        found: R | None = (await session.scalars(query)).one_or_none()
        return found

    async def _find_many(
        self, session: AsyncSession, parent: P, google_ids: Collection[str]
    ) -> dict[str, R]:
        """``find`` of many Google ids at once: the rows the mirror holds, by Google id."""
        query = (
            select(self.model)
            .where(
                self.table.c[self.parent_key] == parent.id,
                self.table.c.google_id.in_(sorted(google_ids)),
            )
            .order_by(self.table.c.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        rows: Sequence[R] = (await session.scalars(query)).all()
        return {str(row.google_id): row for row in rows}

    async def apply(
        self,
        session: AsyncSession,
        parent: P,
        resource: G,
        *,
        actor_id: str | None,
        links: Sequence[Link] | None = None,
        stored: R | None = None,
        looked_up: bool = False,
    ) -> R | None:
        """Bring the mirror up to ``resource`` (and ``links``, when given) and announce the
        change. ``stored``: the row it belongs to, when the caller looked for it (``looked_up``;
        e.g. a create in progress). None when nothing is mirrored (gone, or not mirrorable)."""
        if stored is None and not looked_up:
            stored = await self.find(session, parent, resource.id)
        if stored is None:
            if self.rules.gone(resource):
                return None  # never mirrored, already gone: nothing to announce
            values = self.rules.values(parent, resource, None)
            if values is None:
                return None
            stored, inserted = await self._insert(session, parent, resource.id, values)
            if inserted:
                wanted = ordered(links or ())
                if wanted:
                    await self.links.replace(session, stored.id, stored.org_id, wanted)
                await self._announce(session, parent, stored, None, wanted, actor_id)
                return stored
        return await self._update(session, parent, stored, resource, actor_id, links)

    async def apply_many(
        self, session: AsyncSession, parent: P, resources: Sequence[G], *, actor_id: str | None
    ) -> list[R | None]:
        """``apply`` of each of ``resources`` (a sync's page, each id once): the rows held looked
        up in one query, the resources new to the mirror inserted in one statement and announced
        in one write to the outbox. Each row's own events keep their order; those of different
        rows may be in another order than ``resources``."""
        ids = [resource.id for resource in resources]
        if len(set(ids)) != len(ids):
            raise ValueError("apply_many takes each Google id once")
        stored = await self._find_many(session, parent, ids) if ids else {}
        new: dict[str, dict[str, Any]] = {}
        for resource in resources:
            if resource.id not in stored and not self.rules.gone(resource):
                values = self.rules.values(parent, resource, None)
                if values is not None:
                    new[resource.id] = self._new_row(values)
        inserted = await self._insert_rows(session, list(new.values()))
        await self._announce_all(
            session, [(parent, row, None, (), actor_id) for row in inserted.values()]
        )
        rows: list[R | None] = []
        for resource in resources:
            row = inserted.get(resource.id)
            if row is None:
                # Held, gone, not mirrorable, or inserted first by a concurrent writer.
                row = await self.apply(
                    session,
                    parent,
                    resource,
                    actor_id=actor_id,
                    stored=stored.get(resource.id),
                    looked_up=resource.id not in new,
                )
            rows.append(row)
        return rows

    async def remove(
        self, session: AsyncSession, parent: P, rows: Sequence[R], kind: type[VersionedData]
    ) -> int:
        """``rows`` of ``parent`` leave the mirror though Google still holds them: each gets the
        next version, announced as ``kind`` with its timeline copy ``removed`` (no title,
        summary or participants left in it), then is deleted with its links. How many."""
        if not rows:
            return 0
        links = await self.links.of(session, [row.id for row in rows])
        now = self.clock.now()
        events: list[Event[Any]] = []
        for row in rows:
            row.version += 1
            row.updated_at = now
            snapshot = self.rules.snapshot(parent, row, links[row.id], None)
            projection = snapshot["timeline"]
            assert isinstance(projection, TimelineProjection)
            snapshot["timeline"] = projection.model_copy(
                update={
                    "title": "(removed)",
                    "summary": None,
                    "participants": [],
                    "status": REMOVED_STATUS,
                    "version": row.version,
                }
            )
            events.append(new_event(kind(**snapshot), org_id=row.org_id, actor_id=None, time=now))
        await add_events_to(session, self.outbox, events)
        await session.flush()  # the rows' new versions, before they go
        await session.execute(delete(self.table).where(self.table.c.id.in_([r.id for r in rows])))
        for row in rows:
            session.expunge(row)
        return len(rows)

    def _new_row(self, values: dict[str, Any]) -> dict[str, Any]:
        now = self.clock.now()
        return {"id": new_id(), "version": 1, "created_at": now, "updated_at": now, **values}

    async def _insert_rows(
        self, session: AsyncSession, rows: Sequence[dict[str, Any]]
    ) -> dict[str, R]:
        """The rows inserted, by Google id (one a concurrent writer inserted first is not)."""
        if not rows:
            return {}
        answer = await session.scalars(
            self._insert_row, list(rows), execution_options={"populate_existing": True}
        )
        return {str(row.google_id): row for row in answer.all()}

    async def _insert(
        self, session: AsyncSession, parent: P, google_id: str, values: dict[str, Any]
    ) -> tuple[R, bool]:
        """The new row (and True), or the row a concurrent writer inserted first (and False)."""
        inserted = (await self._insert_rows(session, [self._new_row(values)])).get(google_id)
        if inserted is not None:
            return inserted, True
        found = await self.find(session, parent, google_id)
        assert found is not None
        return found, False

    async def _update(
        self,
        session: AsyncSession,
        parent: P,
        stored: R,
        resource: G,
        actor_id: str | None,
        links: Sequence[Link] | None,
    ) -> R:
        pending = stored.google_id is None
        current = (await self.links.of(session, [stored.id]))[stored.id]
        wanted = ordered(links) if links is not None else current
        newer = pending or is_newer(stored, resource)
        if not newer and wanted == current:
            return stored
        before = None if pending else self._columns(stored)
        if newer:
            for name, value in (self.rules.values(parent, resource, stored) or {}).items():
                setattr(stored, name, value)
        if wanted != current:
            await self.links.replace(session, stored.id, stored.org_id, wanted)
        if not pending:
            stored.version += 1
        stored.updated_at = self.clock.now()
        await session.flush()
        await self._announce(session, parent, stored, before, wanted, actor_id)
        return stored

    def _columns(self, row: R) -> dict[str, Any]:
        return {column.name: getattr(row, column.name) for column in self.table.columns}

    async def _announce(
        self,
        session: AsyncSession,
        parent: P,
        row: R,
        before: Before | None,
        links: Sequence[Link],
        actor_id: str | None,
    ) -> None:
        await self._announce_all(session, [(parent, row, before, links, actor_id)])

    async def _announce_all(
        self,
        session: AsyncSession,
        changes: Sequence[tuple[P, R, Before | None, Sequence[Link], str | None]],
    ) -> None:
        """The events of ``changes`` (each a row's parent, the row, its columns before, its
        links, the actor), in one write to the outbox."""
        events: list[Event[Any]] = []
        for parent, row, before, links, actor_id in changes:
            kind = self.rules.kind(before, row)
            if kind is not None:
                data = kind(**self.rules.snapshot(parent, row, links, actor_id))
                events.append(
                    new_event(data, org_id=row.org_id, actor_id=actor_id, time=row.updated_at)
                )
        if events:
            await add_events_to(session, self.outbox, events)
