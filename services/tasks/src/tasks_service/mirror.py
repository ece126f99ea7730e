"""The tasks mirror rules: what a Google task (or list) becomes in the mirror, and what is
announced.

Every path goes through the kit's ``MirrorWriter`` (``apply_task``), so a task is announced once
however many paths see it: ``created`` by the writer that gives a row its Google id, then
``completed``, ``deleted`` or ``updated`` for a later version; the same version seen again
announces nothing. Google Tasks takes no ids from clients, so a create in progress (a row without
a Google id) recognises its Google task by content (``adoptable``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Final
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from pipedesk_common.clock import Clock
from pipedesk_common.events import VersionedData
from pipedesk_common.events.tasks import TaskCompleted, TaskCreated, TaskDeleted, TaskUpdated
from pipedesk_common.events.timeline import (
    ItemKind,
    Link,
    TimelineProjection,
    TimelineSource,
    Visibility,
)
from pipedesk_common.google.resources import as_utc
from pipedesk_common.ids import new_id
from pipedesk_common.mirror.links import public_links
from pipedesk_common.mirror.writer import MirrorWriter
from tasks_service.google import COMPLETED, GoogleTask, GoogleTaskList
from tasks_service.models import TABLES, MirroredTask, TaskList
from tasks_service.repository import TASK_LINKS, TasksRepository
from tasks_service.schemas import TaskListPublic, TaskPublic

MAX_SUMMARY: Final = 4000
# A Google task is adopted by a create in progress only if Google changed it after (about) when
# the create was recorded: clocks differ a little, never by this much.
ADOPTION_SKEW: Final = timedelta(minutes=5)
CONTENT: Final = ("title", "notes", "due", "parent_google_id")

TaskWriter = MirrorWriter[MirroredTask, TaskList, GoogleTask]


def columns(resource: GoogleTask) -> dict[str, Any]:
    return {
        "google_id": resource.id,
        "parent_google_id": resource.parent,
        "position": resource.position,
        "title": resource.title or "",
        "notes": resource.notes,
        "status": resource.status,
        "due": resource.due_date,
        "completed_at": as_utc(resource.completed),
        "hidden": resource.hidden,
        "deleted": resource.deleted,
        "etag": resource.etag,
        "google_updated": as_utc(resource.updated),
        "resource": resource.raw,
    }


def same_content(pending: MirroredTask, resource: GoogleTask) -> bool:
    found = columns(resource)
    return all(getattr(pending, name) == found[name] for name in CONTENT)


class TaskRules:
    def gone(self, resource: GoogleTask) -> bool:
        return resource.deleted

    def values(
        self, tasklist: TaskList, resource: GoogleTask, stored: MirroredTask | None
    ) -> dict[str, Any]:
        owner = {"org_id": tasklist.org_id, "user_id": tasklist.user_id}
        return {**owner, "tasklist_id": tasklist.id, **columns(resource), "creating_until": None}

    def kind(
        self, before: Mapping[str, Any] | None, row: MirroredTask
    ) -> type[VersionedData] | None:
        if before is None:
            return None if row.deleted else TaskCreated  # created and deleted unseen: nothing
        if row.deleted:
            return None if before["deleted"] else TaskDeleted
        if row.status == COMPLETED and before["status"] != COMPLETED:
            return TaskCompleted
        return TaskUpdated

    def snapshot(
        self, tasklist: TaskList, task: MirroredTask, links: Sequence[Link], actor_id: str | None
    ) -> dict[str, Any]:
        assert task.google_id is not None
        summary_parts = []
        if task.due is not None:
            summary_parts.append(f"Due {task.due.isoformat()}.")
        if task.notes:
            summary_parts.append(task.notes)
        summary = " ".join(summary_parts)[:MAX_SUMMARY] or None
        web_link = GoogleTask.model_validate(task.resource).web_view_link
        return {
            "id": str(task.id),
            "version": task.version,
            "org_id": task.org_id,
            "owner_id": task.user_id,
            "assigned_by": task.assigned_by,
            "tasklist_id": tasklist.google_id,
            "google_id": task.google_id,
            "parent_google_id": task.parent_google_id,
            "title": task.title,
            "notes": task.notes,
            "status": task.status,
            "due": task.due,
            "completed_at": task.completed_at,
            "hidden": task.hidden,
            "deleted": task.deleted,
            "web_link": web_link,
            "links": list(links),
            "timeline": TimelineProjection(
                kind=ItemKind.TASK,
                occurred_at=task.completed_at or task.created_at,
                title=(task.title or "(no title)")[:500],
                summary=summary,
                participants=[tasklist.user_email.lower()] if tasklist.user_email else [],
                links=list(links),
                source=TimelineSource(
                    service="tasks",
                    key=f"tasks:task:{task.id}",
                    google_id=task.google_id,
                    url=web_link,
                ),
                status="deleted" if task.deleted else task.status,
                actor_id=actor_id,
                visibility=Visibility(owner_id=task.user_id),
                version=task.version,
            ),
        }


def task_writer(clock: Clock) -> TaskWriter:
    return MirrorWriter(
        MirroredTask,
        parent_key="tasklist_id",
        links=TASK_LINKS,
        outbox=TABLES.outbox,
        clock=clock,
        rules=TaskRules(),
    )


class CreateInProgress(Exception):
    """A create that may be this very task is being recorded by another transaction."""


async def _adoptable(
    session: AsyncSession, tasklist: TaskList, resource: GoogleTask
) -> MirroredTask | None:
    """A create in progress in this list that ``resource`` is the Google side of: same content,
    changed in Google after the create was recorded (Google takes no client ids, so a create
    that died after Google's answer is recognised this way). Raises ``CreateInProgress`` when
    such a create is held by another transaction: that request is recording this task now, and
    a second row for it must not be made."""
    repository = TasksRepository(session)
    changed = as_utc(resource.updated)
    busy = False
    for pending in await repository.pending_tasks(tasklist.id):
        recent = changed is None or changed >= pending.created_at - ADOPTION_SKEW
        if not (recent and same_content(pending, resource)):
            continue
        locked = await repository.lock_if_free(pending.id)
        if locked is None:
            busy = True
        elif locked.google_id is None:
            return locked
    if busy:
        raise CreateInProgress
    return None


async def apply_task(
    session: AsyncSession,
    writer: TaskWriter,
    tasklist: TaskList,
    resource: GoogleTask,
    *,
    actor_id: str | None,
    links: Sequence[Link] | None = None,
    pending: MirroredTask | None = None,
) -> MirroredTask | None:
    """Bring the mirror up to ``resource`` (and ``links``, when given); announce the change.

    ``pending`` is the create in progress that ``resource`` answers; without it, a task the
    mirror does not know may be adopted by a matching create in progress (after a crash)."""
    stored = await writer.find(session, tasklist, resource.id)
    if stored is None and pending is not None and pending.google_id in {None, resource.id}:
        stored = pending
    if stored is None:
        try:
            stored = await _adoptable(session, tasklist, resource)
        except CreateInProgress:
            return None  # the request creating it records it (a later poll adopts it if it dies)
    return await writer.apply(
        session, tasklist, resource, actor_id=actor_id, links=links, stored=stored, looked_up=True
    )


async def mark_deleted(
    session: AsyncSession,
    writer: TaskWriter,
    tasklist: TaskList,
    task: MirroredTask,
    *,
    actor_id: str | None,
) -> None:
    """Google deleted ``task`` (with its list, or as a subtask of a deleted task)."""
    if task.google_id is None or task.deleted:
        return
    gone = {**task.resource, "deleted": True, "etag": f"{task.etag}-deleted"}
    await apply_task(session, writer, tasklist, GoogleTask.model_validate(gone), actor_id=actor_id)


def public(
    task: MirroredTask,
    links: Sequence[Link],
    parent_id: UUID | None,
    hidden: Sequence[Link] = (),
) -> TaskPublic:
    """The task as its reader sees it: links to records they may not read (``hidden``) without
    their ids."""
    assert task.google_id is not None
    return TaskPublic(
        id=task.id,
        list_id=task.tasklist_id,
        google_id=task.google_id,
        owner_id=task.user_id,
        assigned_by=task.assigned_by,
        parent_id=parent_id,
        position=task.position,
        title=task.title,
        notes=task.notes,
        status="completed" if task.status == COMPLETED else "needsAction",
        due=task.due,
        completed_at=task.completed_at,
        hidden=task.hidden,
        deleted=task.deleted,
        web_link=GoogleTask.model_validate(task.resource).web_view_link,
        links=public_links(links, hidden),
        version=task.version,
        created_at=task.created_at,
        updated_at=task.updated_at,
    )


def public_list(tasklist: TaskList) -> TaskListPublic:
    return TaskListPublic(
        id=tasklist.id,
        google_id=tasklist.google_id,
        title=tasklist.title,
        is_default=tasklist.is_default,
        polled_at=tasklist.polled_at,
        created_at=tasklist.created_at,
        updated_at=tasklist.updated_at,
    )


async def apply_tasklist(
    session: AsyncSession,
    clock: Clock,
    owner: tuple[str, str, str | None],
    resource: GoogleTaskList,
    *,
    is_default: bool | None = None,
) -> TaskList:
    """The mirrored list for ``resource`` (inserted if new, renamed if Google's title changed)."""
    org_id, user_id, email = owner
    repository = TasksRepository(session)
    now = clock.now()
    await repository.insert_tasklist(
        {
            "id": new_id(),
            "org_id": org_id,
            "user_id": user_id,
            "user_email": email,
            "google_id": resource.id,
            "title": resource.title or "",
            "is_default": bool(is_default),
            "etag": resource.etag,
            "created_at": now,
            "updated_at": now,
        }
    )
    stored = await repository.tasklist_by_google_id(org_id, user_id, resource.id, for_update=True)
    assert stored is not None
    if stored.etag != resource.etag or (is_default is not None and stored.is_default != is_default):
        stored.title = resource.title or ""
        stored.etag = resource.etag
        if is_default is not None:
            stored.is_default = is_default
        stored.updated_at = now
    if email is not None and stored.user_email is None:
        stored.user_email = email
    return stored
