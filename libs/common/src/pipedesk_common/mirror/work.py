"""“Sync this key”: one place where a Google service asks for, runs and tracks its syncs.

A sync is **requested** in the caller's transaction (a push notification, a write through the
API, a reconnect) and **started** in the background once that transaction commits; the
coalescer runs it at most once at a time per key across processes, and once more if asked
again meanwhile. Each run's outcome goes to the user's sync health; a user whose access is gone
is not an error to retry (nothing can be done until they reconnect). The periodic job
(``sync_all``) asks for every key that should be synced and drains whatever is pending, leaving
alone the users that health holds back.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from pipedesk_common.background import BackgroundWork
from pipedesk_common.coalesce import Coalescer
from pipedesk_common.events.sync import SyncState
from pipedesk_common.mirror.health import SyncHealth
from pipedesk_common.mirror.keys import SyncKey
from pipedesk_common.mirror.paged import skipped_items
from pipedesk_common.uow import UnitOfWork, on_commit

log = logging.getLogger(__name__)

SyncRun = Callable[[SyncKey], Awaitable[None]]
KeysToSync = Callable[[AsyncSession], Awaitable[list[SyncKey]]]


class SyncWork:
    def __init__(
        self,
        product: str,
        uow: UnitOfWork,
        coalescer: Coalescer,
        background: BackgroundWork,
        health: SyncHealth,
    ) -> None:
        self.product = product
        self.uow = uow
        self.coalescer = coalescer
        self.background = background
        self.health = health
        self._run: SyncRun | None = None

    def runs(self, run: SyncRun) -> None:
        """What one sync of a key does (set once, when the service is assembled)."""
        self._run = run

    async def request(self, session: AsyncSession, key: SyncKey) -> None:
        """Ask for a sync of ``key``, started once the caller's transaction commits."""
        await self.coalescer.request(session, str(key))
        on_commit(session, lambda: self.start(key))

    async def record(self, session: AsyncSession, key: SyncKey) -> None:
        """Ask for a sync of ``key`` that the next drain runs (nothing is started)."""
        await self.coalescer.request(session, str(key))

    def start(self, key: SyncKey) -> None:
        """Drain ``key`` in the background (its request was committed before)."""
        self.background.spawn(self.drain(key), name=str(key))

    async def drain(self, key: SyncKey) -> int:
        """Run the requested syncs of ``key`` now; how many ran (0: another process has it)."""
        return await self.coalescer.drain(str(key), self._tracked)

    async def forget_user(self, session: AsyncSession, org_id: str, user_id: str) -> None:
        """Drop every pending sync of the user (part of the caller's transaction)."""
        await self.coalescer.forget(session, str(SyncKey(self.product, org_id, user_id)))

    async def sync_all(self, keys: KeysToSync) -> int:
        """Ask for a sync of every key ``keys`` lists, then drain every pending key; how many
        syncs ran. Users that health holds back (reconnect needed, next attempt not due) are
        left alone; one user's failure does not stop the others."""
        held = await self.health.held_back()
        async with self.uow.write() as session:
            for key in await keys(session):
                if key.user not in held:
                    await self.record(session, key)
        runs = 0
        for raw in await self.coalescer.pending_keys():
            try:
                key = SyncKey.parse(raw)
            except ValueError:
                log.warning("dropping a sync request of an unknown form: %r", raw)
                async with self.uow.write() as session:
                    await self.coalescer.forget(session, raw)
                continue
            if key.user in held:
                continue
            try:
                runs += await self.drain(key)
            except Exception:
                log.warning("sync of %s failed", raw, exc_info=True)
        return runs

    async def _tracked(self, raw: str) -> None:
        """One run (the coalescer's work function), its outcome kept in the user's health."""
        if self._run is None:
            raise RuntimeError(f"the {self.product} service has no sync to run")
        key = SyncKey.parse(raw)
        await self.health.started(*key.user)
        try:
            with skipped_items() as skipped:
                await self._run(key)
        except Exception as error:
            if await self.health.failed(*key.user, error) is SyncState.NEEDS_RECONNECT:
                log.info("%s: the user's Google access is gone; not synced", raw)
                return
            raise
        await self.health.succeeded(*key.user, skipped=skipped)
