"""Deleting a user's rows from every table of a service's schema, for the lifecycle's deletion
of a user's Google data (``pipedesk_common.lifecycle``).

Every table of the service's metadata with both an ``org_id`` and a ``user_id`` column holds
rows of one user (the mirror, sync health, push channels, connected accounts…): their rows are
deleted, children before parents, and counted by table. A service's table that names the user
another way is the service's own part to delete.

An org offboarded: every row of every table with an ``org_id`` column is deleted, and in the
tables without one (pending syncs, idempotent answers, consumers' version gates) every row whose
text names the org's id.

The outbox keeps the events it sent for a while (``OUTBOX_RETENTION``); those naming the user
(their id, their Google e-mail) are deleted too. Events not sent yet are left to be delivered.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable

from sqlalchemy import JSON, MetaData, String, Table, Text, cast, delete, func, literal, or_
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from pipedesk_common.outbox import SENT


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


async def erase_sent_events(
    session: AsyncSession | AsyncConnection, outbox: Table, naming: Iterable[str]
) -> int:
    """Delete the events ``outbox`` sent whose body names one of ``naming`` (a user's id, their
    Google e-mail: as JSON strings), in the caller's transaction; how many."""
    needles = [json.dumps(value).encode() for value in naming if value]
    if not needles:
        return 0
    result = await session.execute(
        delete(outbox).where(
            outbox.c.status == SENT,
            or_(
                *(func.position(literal(needle).op("IN")(outbox.c.body)) > 0 for needle in needles)
            ),
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
            count = await erase_sent_events(session, outbox, [org_id])
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
