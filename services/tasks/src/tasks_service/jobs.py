"""The tasks service's periodic jobs (each runs once per interval across all replicas)."""

from __future__ import annotations

import logging
from datetime import timedelta

from pipedesk_common.periodic import PeriodicJob
from tasks_service.mirror import apply_task
from tasks_service.repository import TasksRepository
from tasks_service.service import TasksRuntime
from tasks_service.settings import TasksSettings
from tasks_service.sync import find_in_google

log = logging.getLogger(__name__)


async def poll_all(runtime: TasksRuntime) -> int:
    """Every known user's poll is asked for, then every pending poll is run (including those
    left behind by a process that died, or by a failed poll)."""
    async with runtime.sessionmaker.begin() as session:
        for org_id, user_id in await TasksRepository(session).polled_users():
            await runtime.request_poll(session, org_id, user_id)
    runs = 0
    for key in await runtime.coalescer.pending_keys():
        try:
            runs += await runtime.coalescer.drain(key, runtime.poll.run_key)
        except Exception:  # one user's failure (revoked access…) must not stop the others
            log.warning("poll of %s failed", key, exc_info=True)
    return runs


async def settle_stale_creates(runtime: TasksRuntime, retention: timedelta) -> int:
    """Creates still pending after ``retention`` (their requests died and were never retried)
    are looked for in Google once more: adopted if found, forgotten if not."""
    settled = 0
    async with runtime.sessionmaker() as session:
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
                found = await find_in_google(
                    runtime.google, runtime.sessionmaker, tasklist, pending
                )
            except Exception:  # the next run tries again
                log.warning("could not look for the pending task %s", pending.id, exc_info=True)
                continue
        now = runtime.clock.now()
        async with runtime.sessionmaker.begin() as session:
            repository = TasksRepository(session)
            if not await repository.claim_pending(pending.id, now + runtime.create_lease, now):
                continue  # a retry took it meanwhile
            locked = await repository.any_task(pending.id, for_update=True)
            if found is not None and tasklist is not None:
                await apply_task(
                    session, runtime.clock, tasklist, found, actor_id=None, pending=locked
                )
            else:
                await repository.delete_task_row(pending.id)
        settled += 1
    return settled


async def prune(runtime: TasksRuntime, retention: timedelta) -> int:
    async with runtime.sessionmaker.begin() as session:
        pruned = await runtime.idempotency.prune(session)
    return pruned + await settle_stale_creates(runtime, retention)


def tasks_jobs(runtime: TasksRuntime, settings: TasksSettings) -> list[PeriodicJob]:
    retention = timedelta(hours=settings.pending_retention_hours)
    return [
        PeriodicJob(
            "tasks.poll",
            timedelta(seconds=settings.poll_interval_seconds),
            lambda: poll_all(runtime),
        ),
        PeriodicJob("tasks.prune", timedelta(hours=1), lambda: prune(runtime, retention)),
    ]
