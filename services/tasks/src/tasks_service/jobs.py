"""The tasks service's own periodic jobs (the kit adds pruning of idempotency keys)."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from pipedesk_common.mirror.keys import SyncKey
from pipedesk_common.periodic import PeriodicJob
from tasks_service.mirror import apply_task
from tasks_service.repository import TasksRepository
from tasks_service.sync import TasksPoll, TasksRuntime, poll_key

log = logging.getLogger(__name__)


async def polled_keys(session: AsyncSession) -> list[SyncKey]:
    """Every user with a live list: whom the periodic poll visits."""
    return [poll_key(*user) for user in await TasksRepository(session).polled_users()]


async def settle_stale_creates(runtime: TasksRuntime) -> int:
    """Creates still pending after the retention (their requests died and were never retried)
    are looked for in Google once more: adopted if found, forgotten if not."""
    retention = timedelta(hours=runtime.settings.pending_retention_hours)
    lease = timedelta(seconds=runtime.settings.create_lease_seconds)
    poll = TasksPoll.of(runtime)
    settled = 0
    async with runtime.uow.read() as session:
        repository = TasksRepository(session)
        stale = await repository.stale_pending(runtime.clock.now() - retention)
        lists = {
            task.tasklist_id: await repository.tasklist_by_id(task.tasklist_id) for task in stale
        }
    for pending in stale:
        tasklist = lists[pending.tasklist_id]
        found = None
        if tasklist is not None and tasklist.deleted_at is None:
            try:
                found = await poll.find_in_google(tasklist, pending)
            except Exception:  # the next run tries again
                log.warning("could not look for the pending task %s", pending.id, exc_info=True)
                continue
        now = runtime.clock.now()
        async with runtime.uow.write() as session:
            repository = TasksRepository(session)
            if not await repository.claim_pending(pending.id, now + lease, now):
                continue  # a retry took it meanwhile
            locked = await repository.any_task(pending.id, for_update=True)
            if found is not None and tasklist is not None:
                await apply_task(
                    session, poll.writer, tasklist, found, actor_id=None, pending=locked
                )
            else:
                await repository.delete_task_row(pending.id)
        settled += 1
    return settled


def tasks_jobs(runtime: TasksRuntime) -> list[PeriodicJob]:
    poll_every = timedelta(seconds=runtime.settings.poll_interval_seconds)
    return [
        PeriodicJob("tasks.poll", poll_every, lambda: runtime.work.sync_all(polled_keys)),
        PeriodicJob("tasks.prune", timedelta(hours=1), lambda: settle_stale_creates(runtime)),
    ]
