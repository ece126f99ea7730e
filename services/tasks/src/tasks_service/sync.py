"""The per-user poll that keeps the mirror in step (Google Tasks has no push).

Each poll lists the user's task lists (new lists are mirrored, renamed ones renamed, vanished ones
marked deleted with their tasks), then reads each list's tasks changed since the last change it
saw (``updatedMin``, with ``showDeleted``, ``showHidden`` and ``showCompleted``) page by page,
each page applied in its own short transaction. The list's watermark moves only after its last
page, so a poll that dies half-way reads those pages again next time, harmlessly: the same
version of a task publishes nothing. A list never polled (or reset after a move) is read whole,
and a mirrored task Google no longer lists is marked deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pipedesk_common.clock import Clock
from pipedesk_common.google import GoogleNotConnected, GoogleReconnectRequired, GoogleUser
from tasks_service.google import TasksGoogle
from tasks_service.mirror import (
    ADOPTION_SKEW,
    apply_task,
    apply_tasklist,
    google_time,
    mark_deleted,
    same_content,
)
from tasks_service.models import MirroredTask, TaskList, owner_of
from tasks_service.repository import TasksRepository

log = logging.getLogger(__name__)

POLLS = Counter("pipedesk_tasks_polls_total", "Task list polls by kind", ["kind"])

KEY_PREFIX = "tasks-poll:"


def poll_key(org_id: str, user_id: str) -> str:
    """The coalescer's key for one user's poll."""
    return f"{KEY_PREFIX}{org_id}:{user_id}"


def user_of_key(key: str) -> tuple[str, str]:
    org_id, _, user_id = key.removeprefix(KEY_PREFIX).partition(":")
    return org_id, user_id


@dataclass
class PollOutcome:
    lists: int = 0
    pages: int = 0
    items: int = 0


class TasksPoll:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        google: TasksGoogle,
        clock: Clock,
        *,
        page_size: int = 100,
        overlap: timedelta = timedelta(seconds=5),
    ) -> None:
        self.sessionmaker = sessionmaker
        self.google = google
        self.clock = clock
        self.page_size = page_size
        self.overlap = overlap

    async def run_key(self, key: str) -> None:
        """The coalescer's work function."""
        await self.poll(*user_of_key(key))

    async def poll(self, org_id: str, user_id: str) -> PollOutcome:
        async with self.sessionmaker() as session:
            known = await TasksRepository(session).tasklists_of(org_id, user_id)
        if not known:
            return PollOutcome()
        email = next((t.user_email for t in known if t.user_email), None)
        user = GoogleUser(org_id=org_id, user_id=user_id, email=email)
        outcome = PollOutcome()
        try:
            for tasklist in await self.sync_lists(user, known):
                await self._tasks(tasklist, outcome)
                outcome.lists += 1
        except (GoogleNotConnected, GoogleReconnectRequired):
            # Nothing to do until the user connects again; asking again would not help.
            log.info("user %s of %s has no Google Tasks connection: not polled", user_id, org_id)
            POLLS.labels("not_connected").inc()
        return outcome

    async def sync_lists(self, user: GoogleUser, known: list[TaskList]) -> list[TaskList]:
        """Mirror the user's lists as Google lists them; the live ones, to poll."""
        resources = await self.google.tasklists(user)
        default_id = resources[0]["id"] if resources else None  # Google lists the default first
        live: list[TaskList] = []
        async with self.sessionmaker.begin() as session:
            owner = (user.org_id, user.user_id, user.email)
            for resource in resources:
                live.append(
                    await apply_tasklist(
                        session,
                        self.clock,
                        owner,
                        resource,
                        is_default=resource["id"] == default_id,
                    )
                )
            listed = {tasklist.google_id for tasklist in live}
            for gone in known:
                if gone.google_id not in listed:
                    await delete_tasklist(session, self.clock, gone, actor_id=None)
        return live

    async def _tasks(self, tasklist: TaskList, outcome: PollOutcome) -> None:
        user = owner_of(tasklist)
        since = tasklist.polled_through
        updated_min = since - self.overlap if since is not None else None
        latest = since
        started = self.clock.now()
        seen: set[str] = set()
        page_token: str | None = None
        POLLS.labels("incremental" if since is not None else "full").inc()
        while True:
            page = await self.google.page(
                user,
                tasklist.google_id,
                updated_min=updated_min,
                page_token=page_token,
                page_size=self.page_size,
            )
            outcome.pages += 1
            outcome.items += len(page.items)
            async with self.sessionmaker.begin() as session:
                for resource in page.items:
                    seen.add(str(resource["id"]))
                    latest = _later(latest, google_time(resource.get("updated")))
                    await apply_task(session, self.clock, tasklist, resource, actor_id=None)
            if page.next_page_token:
                page_token = page.next_page_token
                continue
            async with self.sessionmaker.begin() as session:
                repository = TasksRepository(session)
                locked = await repository.tasklist_by_google_id(
                    tasklist.org_id, tasklist.user_id, tasklist.google_id, for_update=True
                )
                if locked is None:
                    return
                if since is None:
                    # Unlisted means deleted, unless our own API recorded it after the listing.
                    for task in await repository.live_tasks(tasklist.id):
                        if task.google_id not in seen and task.updated_at < started:
                            await mark_deleted(session, self.clock, locked, task, actor_id=None)
                # A reset (after a move) since this poll began wins: the next poll reads all.
                if locked.polled_through == since:
                    locked.polled_through = latest
                locked.polled_at = self.clock.now()
            return


def _later(first: datetime | None, second: datetime | None) -> datetime | None:
    if first is None or second is None:
        return first or second
    return max(first, second)


async def delete_tasklist(
    session: AsyncSession, clock: Clock, tasklist: TaskList, *, actor_id: str | None
) -> None:
    """The list is gone from Google: it and every task in it are marked deleted."""
    repository = TasksRepository(session)
    locked = await repository.tasklist_by_google_id(
        tasklist.org_id, tasklist.user_id, tasklist.google_id, for_update=True
    )
    if locked is None or locked.deleted_at is not None:
        return
    for task in await repository.live_tasks(locked.id):
        await mark_deleted(session, clock, locked, task, actor_id=actor_id)
    locked.deleted_at = clock.now()
    locked.updated_at = clock.now()


async def find_in_google(
    google: TasksGoogle,
    sessionmaker: async_sessionmaker[AsyncSession],
    tasklist: TaskList,
    pending: MirroredTask,
) -> dict[str, Any] | None:
    """The Google task an earlier attempt of the create ``pending`` made, if it made one: same
    content, changed since the create was recorded, and not mirrored as another task."""
    async with sessionmaker() as session:
        mirrored = await TasksRepository(session).mirrored_google_ids(tasklist.id)
    page_token: str | None = None
    while True:
        page = await google.page(
            owner_of(tasklist),
            tasklist.google_id,
            updated_min=pending.created_at - ADOPTION_SKEW,
            page_token=page_token,
            page_size=100,
        )
        for resource in page.items:
            if str(resource["id"]) not in mirrored and same_content(pending, resource):
                return resource
        if not page.next_page_token:
            return None
        page_token = page.next_page_token
