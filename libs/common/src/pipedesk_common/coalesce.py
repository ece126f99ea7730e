"""At most one follow-up run, across processes: a coalescer of requests for the same work.

A push notification says "something changed in X"; ten of them arriving while X is being synced
need ONE more sync afterwards, not ten, whichever process received them. Each key (e.g. one
calendar of one user) has a row with a ``pending`` flag and a lease:

- ``request(key)`` sets ``pending`` (in the caller's transaction: a request is never lost once
  committed);
- ``drain(key, work)`` claims the key — clears ``pending`` and takes the lease, atomically, only if
  nobody holds an unexpired lease — runs ``work``, releases the lease, and runs again while
  ``pending`` was set meanwhile. A process that cannot claim leaves the request to the holder,
  which sees ``pending`` when it releases. The lease is extended while ``work`` runs, and expires
  if its holder dies, so a request left by a dead process is picked up by ``drain_pending``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from uuid import uuid4

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    MetaData,
    String,
    Table,
    and_,
    delete,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pipedesk_common.clock import Clock

log = logging.getLogger(__name__)

Work = Callable[[str], Awaitable[None]]


def coalescer_table(metadata: MetaData) -> Table:
    """The coalescer's rows, in the service's own schema (so its migrations create it)."""
    return Table(
        "work_requests",
        metadata,
        Column("key", String(500), primary_key=True),
        Column("pending", Boolean, nullable=False, server_default=text("false")),
        Column("holder", String(64), nullable=True),
        Column("lease_until", DateTime(timezone=True), nullable=True),
        Column("requested_at", DateTime(timezone=True), nullable=True),
        Index("ix_work_requests_pending", "key", postgresql_where=text("pending")),
    )


class Coalescer:
    def __init__(
        self,
        table: Table,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        lease: timedelta = timedelta(minutes=5),
    ) -> None:
        self.table = table
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.lease = lease
        self.holder = uuid4().hex

    async def request(self, session: AsyncSession, key: str) -> None:
        """Ask for one more run of ``key`` (part of the caller's transaction)."""
        statement = insert(self.table).values(key=key, pending=True, requested_at=self.clock.now())
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["key"],
                set_={"pending": True, "requested_at": statement.excluded.requested_at},
            )
        )

    async def forget(self, session: AsyncSession, key: str) -> None:
        """Drop the requests of ``key`` and of every key below it (``<key>:…``), as part of the
        caller's transaction: work nobody can do any more, e.g. for a user whose access ended."""
        column = self.table.c.key
        below = column.startswith(f"{key}:", autoescape=True)
        await session.execute(delete(self.table).where(or_(column == key, below)))

    async def _claim(self, key: str) -> bool:
        table, now = self.table, self.clock.now()
        async with self.sessionmaker.begin() as session:
            claimed = await session.scalar(
                update(table)
                .where(
                    table.c.key == key,
                    table.c.pending == true(),
                    or_(table.c.lease_until.is_(None), table.c.lease_until < now),
                )
                .values(pending=False, holder=self.holder, lease_until=now + self.lease)
                .returning(table.c.key)
            )
        return claimed is not None

    async def _release(self, key: str) -> None:
        table = self.table
        async with self.sessionmaker.begin() as session:
            await session.execute(
                update(table)
                .where(table.c.key == key, table.c.holder == self.holder)
                .values(holder=None, lease_until=None)
            )

    async def _extend(self, key: str) -> None:
        table = self.table
        async with self.sessionmaker.begin() as session:
            await session.execute(
                update(table)
                .where(table.c.key == key, table.c.holder == self.holder)
                .values(lease_until=self.clock.now() + self.lease)
            )

    async def _keep_lease(self, key: str) -> None:
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            try:
                await self._extend(key)
            except Exception:  # the next beat tries again; the lease is long
                log.warning("could not extend the lease of %s", key, exc_info=True)

    async def drain(self, key: str, work: Work) -> int:
        """Run ``work(key)`` while requests for ``key`` are pending and nobody else runs it.
        Returns how many runs this call made (0 when another process holds the key)."""
        runs = 0
        while await self._claim(key):
            keeper = asyncio.create_task(self._keep_lease(key))
            try:
                runs += 1
                await work(key)
            except BaseException:
                # Failed or interrupted work is asked for again: the next drain (or the sweep)
                # runs it.
                try:
                    async with self.sessionmaker.begin() as session:
                        await self.request(session, key)
                except Exception:
                    log.warning("could not ask again for %s", key, exc_info=True)
                raise
            finally:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper
                await self._release(key)
        return runs

    async def pending_keys(self, limit: int = 500) -> list[str]:
        """Keys with a request nobody is working on (e.g. left by a process that died)."""
        table, now = self.table, self.clock.now()
        async with self.sessionmaker() as session:
            rows = await session.scalars(
                select(table.c.key)
                .where(
                    and_(
                        table.c.pending == true(),
                        or_(table.c.lease_until.is_(None), table.c.lease_until < now),
                    )
                )
                .order_by(table.c.requested_at)
                .limit(limit)
            )
            return list(rows)

    async def is_idle(self, key: str) -> bool:
        """Nothing pending and nobody running ``key`` (for tests and diagnostics)."""
        table = self.table
        async with self.sessionmaker() as session:
            row = (
                await session.execute(
                    select(table.c.pending, table.c.lease_until).where(table.c.key == key)
                )
            ).one_or_none()
        return row is None or (not row.pending and row.lease_until is None)
