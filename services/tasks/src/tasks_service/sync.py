"""The per-user poll that keeps the mirror in step (Google Tasks has no push).

Each poll lists the user's task lists (new lists are mirrored, renamed ones renamed, vanished ones
marked deleted with their tasks), then reads each list's tasks changed since the last change it
saw (``updatedMin``, with ``showDeleted``, ``showHidden`` and ``showCompleted``) with the kit's
paged sync: each page in its own short transaction, the list's watermark moved only after its
last page, so a poll that dies half-way reads those pages again next time, harmlessly. A list
never polled (or reset after a move, or for a full resync) is read whole, and a mirrored task
Google no longer lists is marked deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from pipedesk_common.clock import Clock
from pipedesk_common.google import GoogleUser
from pipedesk_common.google.resources import Page, as_utc
from pipedesk_common.mirror.keys import SyncKey
from pipedesk_common.mirror.paged import PagedSync
from pipedesk_common.mirror.runtime import MirrorRuntime
from pipedesk_common.mirror.work import SyncRun
from pipedesk_common.uow import UnitOfWork
from tasks_service.google import DEFAULT_LIST, GoogleTask, GoogleTaskList, TasksGoogle
from tasks_service.mirror import (
    ADOPTION_SKEW,
    TaskWriter,
    apply_task,
    apply_tasklist,
    mark_deleted,
    same_content,
    task_writer,
)
from tasks_service.models import MirroredTask, TaskList
from tasks_service.repository import TasksRepository
from tasks_service.settings import TasksSettings

TasksRuntime = MirrorRuntime[TasksGoogle, TasksSettings]


def poll_key(org_id: str, user_id: str) -> SyncKey:
    """What a poll of one user's lists is requested and coalesced as."""
    return SyncKey("tasks", org_id, user_id)


@dataclass
class PollOutcome:
    lists: int = 0
    pages: int = 0
    items: int = 0


class TasksPoll:
    def __init__(
        self,
        uow: UnitOfWork,
        google: TasksGoogle,
        clock: Clock,
        *,
        page_size: int = 100,
        overlap: timedelta = timedelta(seconds=5),
    ) -> None:
        self.uow = uow
        self.google = google
        self.clock = clock
        self.page_size = page_size
        self.overlap = overlap
        self.writer = task_writer(clock)
        self.listing = PagedSync[GoogleTask]("tasks", uow)

    @classmethod
    def of(cls, runtime: TasksRuntime) -> TasksPoll:
        settings = runtime.settings
        return cls(
            runtime.uow,
            runtime.google,
            runtime.clock,
            page_size=settings.poll_page_size,
            overlap=timedelta(seconds=settings.poll_overlap_seconds),
        )

    async def poll(self, org_id: str, user_id: str) -> PollOutcome:
        async with self.uow.read() as session:
            known = await TasksRepository(session).tasklists_of(org_id, user_id)
        if not known:
            return PollOutcome()
        email = next((t.user_email for t in known if t.user_email), None)
        user = GoogleUser(org_id=org_id, user_id=user_id, email=email)
        outcome = PollOutcome()
        for tasklist in await self.sync_lists(user, known):
            await self._tasks(tasklist, outcome)
            outcome.lists += 1
        return outcome

    async def sync_lists(self, user: GoogleUser, known: list[TaskList]) -> list[TaskList]:
        """Mirror the user's lists as Google lists them; the live ones, to poll."""
        resources = await self.google.tasklists(user)
        default_id = await self._default_list_id(user, known, {r.id for r in resources})
        live: list[TaskList] = []
        async with self.uow.write() as session:
            owner = (user.org_id, user.user_id, user.email)
            for resource in resources:
                live.append(
                    await apply_tasklist(
                        session, self.clock, owner, resource, is_default=resource.id == default_id
                    )
                )
            listed = {tasklist.google_id for tasklist in live}
            for gone in known:
                if gone.google_id not in listed:
                    await delete_tasklist(session, self.writer, gone, actor_id=None)
        return live

    async def _default_list_id(
        self, user: GoogleUser, known: list[TaskList], listed: set[str]
    ) -> str | None:
        """The user's default list, as Google names it (``@default``): Google promises no order
        of ``tasklists.list``. Asked once per user; the default cannot be deleted, so the one
        mirrored stays it while Google lists it."""
        mirrored = next((t.google_id for t in known if t.is_default), None)
        if mirrored in listed:
            return mirrored
        if not listed:
            return None
        return (await self.google.tasklist(user, DEFAULT_LIST)).id

    async def _tasks(self, tasklist: TaskList, outcome: PollOutcome) -> None:
        since = tasklist.polled_through
        updated_min = since - self.overlap if since is not None else None
        latest = since
        started = self.clock.now()
        seen: set[str] = set()

        async def fetch(page_token: str | None) -> Page[GoogleTask]:
            return await self.google.page(
                tasklist.owner,
                tasklist.google_id,
                updated_min=updated_min,
                page_token=page_token,
                page_size=self.page_size,
            )

        async def apply(session: AsyncSession, task: GoogleTask) -> None:
            nonlocal latest
            seen.add(task.id)
            latest = _later(latest, as_utc(task.updated))
            await apply_task(session, self.writer, tasklist, task, actor_id=None)

        async def finish(session: AsyncSession, _last: Page[GoogleTask]) -> None:
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
                        await mark_deleted(session, self.writer, locked, task, actor_id=None)
            # A reset (after a move) since this poll began wins: the next poll reads all.
            if locked.polled_through == since:
                locked.polled_through = latest
            locked.polled_at = self.clock.now()

        listed = await self.listing.read(
            full=since is None, fetch=fetch, apply=apply, finish=finish
        )
        outcome.pages += listed.pages
        outcome.items += listed.items

    async def find_in_google(self, tasklist: TaskList, pending: MirroredTask) -> GoogleTask | None:
        """The Google task an earlier attempt of the create ``pending`` made, if it made one:
        same content, changed since the create was recorded, and not mirrored as another task."""
        async with self.uow.read() as session:
            mirrored = await TasksRepository(session).mirrored_google_ids(tasklist.id)
        page_token: str | None = None
        while True:
            page = await self.google.page(
                tasklist.owner,
                tasklist.google_id,
                updated_min=pending.created_at - ADOPTION_SKEW,
                page_token=page_token,
                page_size=100,
            )
            for resource in page.items:
                if resource.id not in mirrored and same_content(pending, resource):
                    return resource
            if not page.next_page_token:
                return None
            page_token = page.next_page_token

    async def find_list_in_google(
        self, user: GoogleUser, title: str, *, since: datetime
    ) -> GoogleTaskList | None:
        """The list an insert begun at ``since`` made, if it made one: titled ``title``,
        changed in Google since, and not mirrored before ``since`` (a poll may have mirrored it
        meanwhile: that row is still this insert's list)."""
        async with self.uow.read() as session:
            known = await TasksRepository(session).tasklists_of(
                user.org_id, user.user_id, include_deleted=True
            )
        older = {tasklist.google_id for tasklist in known if tasklist.created_at < since}
        for resource in await self.google.tasklists(user):
            changed = as_utc(resource.updated)
            recent = changed is None or changed >= since - ADOPTION_SKEW
            if resource.id not in older and resource.title == title and recent:
                return resource
        return None


def _later(first: datetime | None, second: datetime | None) -> datetime | None:
    if first is None or second is None:
        return first or second
    return max(first, second)


async def delete_tasklist(
    session: AsyncSession, writer: TaskWriter, tasklist: TaskList, *, actor_id: str | None
) -> None:
    """The list is gone from Google: it and every task in it are marked deleted."""
    repository = TasksRepository(session)
    locked = await repository.tasklist_by_google_id(
        tasklist.org_id, tasklist.user_id, tasklist.google_id, for_update=True
    )
    if locked is None or locked.deleted_at is not None:
        return
    for task in await repository.live_tasks(locked.id):
        await mark_deleted(session, writer, locked, task, actor_id=actor_id)
    locked.deleted_at = writer.clock.now()
    locked.updated_at = writer.clock.now()


def tasks_sync(runtime: TasksRuntime) -> SyncRun:
    """The kit's sync of one key: the poll of the user it names."""
    poll = TasksPoll.of(runtime)

    async def run(key: SyncKey) -> None:
        await poll.poll(key.org_id, key.user_id)

    return run


async def resync_user(
    runtime: TasksRuntime, session: AsyncSession, org_id: str, user_id: str
) -> list[SyncKey]:
    """A full resync: every list of the user read whole by the next poll."""
    restarted = await TasksRepository(session).restart_polls(org_id, user_id)
    return [poll_key(org_id, user_id)] if restarted else []
