"""Deleting a user's rows from every table of a service's schema, for the lifecycle's deletion
of a user's Google data (``pipedesk_common.lifecycle``).

Every table of the service's metadata with both an ``org_id`` and a ``user_id`` column holds
rows of one user (the mirror, sync health, push channels, connected accounts…): their rows are
deleted, children before parents, and counted by table. A service's table that names the user
another way is the service's own part to delete.

An org offboarded: every row of every table with an ``org_id`` column is deleted, and in the
tables without one (pending syncs, remembered idempotent answers, consumers' version gates) every
row whose text names the org's id.

Rows that are not "data" but carry it go too:

- the outbox's events naming the user (their id) or the org, sent (kept a while,
  ``OUTBOX_RETENTION``) or not yet sent: an event still to be delivered would carry the content
  to its consumers after the deletion and make them hold it again (``erase_events``). A user's
  audit entries not sent yet are delivered: the org's audit log keeps them;
- remembered idempotent answers (``idempotency_keys``) of the user's requests, which hold what
  they created (``erase_remembered_answers``, by the owner the answer names).

The inbox (processed event ids) and the consumers' version gates (our own ids and versions) hold
no content and are kept: they are what keeps a late redelivery of an old event from applying it
again.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable

from sqlalchemy import JSON, MetaData, String, Table, Text, cast, delete, func, literal, or_
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from pipedesk_common.idempotency import OWNER, owned_scope
from pipedesk_common.outbox import SENT

AUDIT_EVENTS = "%.audit.%"


async def erase_user_rows(
    session: AsyncSession,
    metadata: MetaData,
    org_id: str,
    user_id: str,
    *,
    keep: Collection[str] = (),
) -> dict[str, int]:
    """Delete the user's rows of every table of ``metadata`` keyed by ``org_id`` and
    ``user_id`` (but the tables named in ``keep``), in the caller's transaction; how many rows,
    by table name (tables with none left out)."""
    deleted: dict[str, int] = {}
    for table in reversed(metadata.sorted_tables):
        columns = table.c
        if table.name in keep or "org_id" not in columns or "user_id" not in columns:
            continue
        result = await session.execute(
            delete(table).where(columns.org_id == org_id, columns.user_id == user_id)
        )
        count = int(getattr(result, "rowcount", 0) or 0)
        if count:
            deleted[table.name] = count
    return deleted


async def erase_events(
    session: AsyncSession | AsyncConnection,
    outbox: Table,
    naming: Iterable[str],
    *,
    deliver_audit: bool = True,
) -> int:
    """Delete the events of ``outbox``, sent or still to be sent, whose body names one of
    ``naming`` (a user's id, an org's id: as JSON strings), in the caller's transaction; how
    many. With ``deliver_audit``, audit entries not sent yet (``<service>.audit.<action>``) are
    left to reach the org's audit log, which a user's deletion keeps. An event a relay is
    publishing at this moment is deleted once it is sent."""
    needles = [json.dumps(value).encode() for value in naming if value]
    if not needles:
        return 0
    condition = or_(
        *(func.position(literal(needle).op("IN")(outbox.c.body)) > 0 for needle in needles)
    )
    if deliver_audit:
        condition = condition & or_(
            outbox.c.status == SENT, outbox.c.routing_key.not_like(AUDIT_EVENTS)
        )
    result = await session.execute(delete(outbox).where(condition))
    return int(getattr(result, "rowcount", 0) or 0)


async def erase_remembered_answers(
    session: AsyncSession | AsyncConnection, table: Table, org_id: str, user_id: str
) -> int:
    """Delete the idempotent answers remembered for the user's requests (``table``: a service's
    ``idempotency_keys``), in the caller's transaction; how many."""
    suffix = owned_scope("", org_id, user_id)  # ":<org_id>:<user_id>"
    owner = table.c.body[OWNER]
    result = await session.execute(
        delete(table).where(
            or_(
                (owner["org_id"].astext == org_id) & (owner["user_id"].astext == user_id),
                table.c.scope.endswith(suffix, autoescape=True),
            )
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def erase_org_rows(
    session: AsyncSession | AsyncConnection,
    metadata: MetaData,
    org_id: str,
    *,
    outbox: Table | None = None,
    keep: Collection[str] = (),
) -> dict[str, int]:
    """Delete every row of the org from every table of ``metadata`` (see the module docstring;
    the ``outbox``: its sent events naming the org), in the caller's transaction; how many
    rows, by table name (tables with none left out)."""
    deleted: dict[str, int] = {}
    for table in reversed(metadata.sorted_tables):
        if table.name in keep:
            continue
        if outbox is not None and table is outbox:
            count = await erase_events(session, outbox, [org_id], deliver_audit=False)
        elif "org_id" in table.c:
            result = await session.execute(delete(table).where(table.c.org_id == org_id))
            count = int(getattr(result, "rowcount", 0) or 0)
        else:
            texts = [
                column
                for column in table.c
                if isinstance(column.type, String | Text | JSON | JSONB | ARRAY)
            ]
            if not texts:
                continue
            result = await session.execute(
                delete(table).where(
                    or_(*(cast(column, Text).contains(org_id, autoescape=True) for column in texts))
                )
            )
            count = int(getattr(result, "rowcount", 0) or 0)
        if count:
            deleted[table.name] = count
    return deleted
