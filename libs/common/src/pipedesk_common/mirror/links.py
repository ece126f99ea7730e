"""Record links: which CRM records (leads, deals) a mirrored item belongs to.

Each Google service keeps its links in a table of its own (``record_links_table``), read and
replaced through ``RecordLinks``; ``check_links`` decides, before any Google call, whether the
caller may link to the records they name (``404`` for one they cannot see, ``403`` for one they
may not change). ``LinkInput`` and ``LinkPublic`` are the links' API shapes; inside a service a
link is the events' own ``Link``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, Literal
from uuid import UUID

from fastapi import Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    Column,
    ColumnElement,
    ForeignKey,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    SQLColumnExpression,
    String,
    Table,
    Uuid,
    delete,
    select,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pipedesk_common.access import AccessReplica
from pipedesk_common.auth import Principal
from pipedesk_common.errors import FieldError, Forbidden, InvalidInput, NotFound
from pipedesk_common.events.timeline import Link, RecordType
from pipedesk_common.rbac import Action


class LinkInput(BaseModel):
    """A CRM record to link to (leads and deals)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["lead", "deal"]
    id: UUID


class LinkPublic(BaseModel):
    type: str
    id: str | None = Field(description="The record's id; null when the link is hidden")
    hidden: bool = Field(False, description="A record the caller may not read: its id is not shown")


def record_filter(
    record_type: Annotated[Literal["lead", "deal"] | None, Query()] = None,
    record_id: Annotated[UUID | None, Query()] = None,
) -> Link | None:
    """A list's CRM record filter: ``record_type`` and ``record_id``, always together."""
    if record_type is None and record_id is None:
        return None
    if record_type is None or record_id is None:
        raise InvalidInput("record_type and record_id go together")
    return Link(type=RecordType(record_type), id=str(record_id))


RecordFilterDep = Annotated[Link | None, Depends(record_filter)]


def public_links(links: Iterable[Link], hidden: Iterable[Link] = ()) -> list[LinkPublic]:
    """The links as the caller sees them: those in ``hidden`` without their id."""
    concealed = set(hidden)
    return [
        LinkPublic(type=link.type.value, id=None, hidden=True)
        if link in concealed
        else LinkPublic(type=link.type.value, id=link.id)
        for link in links
    ]


async def hidden_links(
    replica: AccessReplica, session: AsyncSession, principal: Principal, links: Iterable[Link]
) -> list[Link]:
    """The links to records ``principal`` may not read (shown hidden, kept on replace)."""
    return [
        link
        for link in links
        if not await replica.can(session, principal, Action.READ, link.type, link.id)
    ]


def ordered(links: Iterable[Link]) -> list[Link]:
    """Links without repeats, in one order (by type, then id)."""
    return sorted(set(links), key=lambda link: (link.type.value, link.id))


def record_links_table(metadata: MetaData, name: str, *, parent: str, key: str) -> Table:
    """The links of a service's mirrored items (``parent``, a table of the same schema, whose
    ``id`` the column ``key`` holds), e.g. ``event_links`` of ``events`` by ``event_id``."""
    return Table(
        name,
        metadata,
        Column(
            key,
            Uuid,
            ForeignKey(f"{metadata.schema}.{parent}.id", ondelete="CASCADE"),
            nullable=False,
        ),
        Column("record_type", String(20), nullable=False),
        Column("record_id", String(64), nullable=False),
        Column("org_id", String(255), nullable=False),
        PrimaryKeyConstraint(key, "record_type", "record_id"),
        Index(f"ix_{name}_record", "org_id", "record_type", "record_id"),
    )


class RecordLinks:
    """Reads and replaces the links held in one ``record_links_table``."""

    def __init__(self, table: Table, key: str) -> None:
        self.table = table
        self.key = table.c[key]

    async def of(self, session: AsyncSession, ids: Sequence[UUID]) -> dict[UUID, list[Link]]:
        """The links of each item (an item without links has an empty list)."""
        found: dict[UUID, list[Link]] = {item: [] for item in ids}
        if not ids:
            return found
        table = self.table
        rows = await session.execute(
            select(self.key, table.c.record_type, table.c.record_id)
            .where(self.key.in_(ids))
            .order_by(table.c.record_type, table.c.record_id)
        )
        for item, record_type, record_id in rows:
            found[item].append(Link(type=RecordType(record_type), id=record_id))
        return found

    async def replace(
        self, session: AsyncSession, item: UUID, org_id: str, links: Iterable[Link]
    ) -> None:
        await session.execute(delete(self.table).where(self.key == item))
        rows = [
            {
                self.key.name: item,
                "record_type": link.type.value,
                "record_id": link.id,
                "org_id": org_id,
            }
            for link in ordered(links)
        ]
        if rows:
            await session.execute(insert(self.table).values(rows))

    def linked_to(
        self, item: SQLColumnExpression[UUID], org_id: str, record: Link
    ) -> ColumnElement[bool]:
        """A filter: the item (``item``, its id column) is linked to ``record``."""
        table = self.table
        return (
            select(self.key)
            .where(
                self.key == item,
                table.c.org_id == org_id,
                table.c.record_type == record.type.value,
                table.c.record_id == record.id,
            )
            .exists()
        )


async def check_links(
    replica: AccessReplica,
    session: AsyncSession,
    principal: Principal,
    links: Sequence[LinkInput],
    *,
    noun: str,
) -> list[Link]:
    """The links, if the caller may link ``noun`` (meetings, tasks…) to each record: ``404`` for
    a record they cannot see, ``403`` for one they may not change."""
    for index, link in enumerate(links):
        record_id = str(link.id)
        if not await replica.can(session, principal, Action.READ, link.type, record_id):
            raise NotFound(
                f"links.{index}: no such {link.type}",
                errors=[
                    FieldError(
                        field=f"body.links.{index}",
                        message=f"no such {link.type}",
                        code="not_found",
                    )
                ],
            )
        if not await replica.can(session, principal, Action.UPDATE, link.type, record_id):
            raise Forbidden(f"links.{index}: you may not add {noun} to this {link.type}")
    return ordered(Link(type=RecordType(link.type), id=str(link.id)) for link in links)


async def replaced_links(
    replica: AccessReplica,
    session: AsyncSession,
    principal: Principal,
    current: Sequence[Link],
    wanted: Sequence[LinkInput],
    *,
    noun: str,
) -> list[Link]:
    """What a replace of the links by ``principal`` leaves: the ``wanted`` links (checked), and
    every current link to a record they may not read, which they can neither see nor remove."""
    kept = await hidden_links(replica, session, principal, current)
    checked = await check_links(replica, session, principal, wanted, noun=noun)
    return ordered([*checked, *kept])
