"""The local mirror: applying what Google says about a task (or a list), and publishing what
changed.

One function, ``apply_task``, for every source — our own API's answers and poll pages alike — so
a task is announced once however many paths see it: the writer that gives a row its Google id
publishes ``created``; a later version (a new ETag, not older than what is stored) publishes
``completed``, ``deleted`` or ``updated``; the same version seen again publishes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from pipedesk_common.clock import Clock
from pipedesk_common.events import new_event
from pipedesk_common.events.tasks import (
    TaskCompleted,
    TaskCreated,
    TaskDeleted,
    TaskSnapshot,
    TaskUpdated,
)
from pipedesk_common.events.timeline import (
    ItemKind,
    Link,
    RecordType,
    TimelineProjection,
    TimelineSource,
    Visibility,
)
from pipedesk_common.ids import new_id
from pipedesk_common.outbox import add_event
from tasks_service.models import MirroredTask, TaskList, outbox
from tasks_service.repository import LinkPair, TasksRepository
from tasks_service.schemas import LinkPublic, TaskListPublic, TaskPublic

COMPLETED: Final = "completed"
MAX_SUMMARY: Final = 4000
# A Google task is adopted by a create in progress only if Google changed it after (about) when
# the create was recorded: clocks differ a little, never by this much.
ADOPTION_SKEW: Final = timedelta(minutes=5)


def google_time(value: str | None) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _due(value: str | None) -> date | None:
    moment = google_time(value)
    return moment.date() if moment else None


def columns(resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "google_id": str(resource["id"]),
        "parent_google_id": resource.get("parent"),
        "position": resource.get("position"),
        "title": resource.get("title") or "",
        "notes": resource.get("notes"),
        "status": resource.get("status") or "needsAction",
        "due": _due(resource.get("due")),
        "completed_at": google_time(resource.get("completed")),
        "hidden": bool(resource.get("hidden")),
        "deleted": bool(resource.get("deleted")),
        "etag": resource.get("etag"),
        "google_updated": google_time(resource.get("updated")),
        "resource": resource,
    }


def _is_newer(stored: MirroredTask, resource: dict[str, Any]) -> bool:
    if resource.get("etag") is not None and resource.get("etag") == stored.etag:
        return False
    incoming = google_time(resource.get("updated"))
    return not (incoming and stored.google_updated and incoming < stored.google_updated)


def same_content(pending: MirroredTask, resource: dict[str, Any]) -> bool:
    found = columns(resource)
    return all(
        getattr(pending, name) == found[name]
        for name in ("title", "notes", "due", "parent_google_id")
    )


class CreateInProgress(Exception):
    """A create that may be this very task is being recorded by another transaction."""


async def _adoptable(
    session: AsyncSession, tasklist: TaskList, resource: dict[str, Any]
) -> MirroredTask | None:
    """A create in progress in this list that ``resource`` is the Google side of: same content,
    changed in Google after the create was recorded (Google takes no client ids, so a create
    that died after Google's answer is recognised this way). Raises ``CreateInProgress`` when
    such a create is held by another transaction: that request is recording this task now, and
    a second row for it must not be made."""
    repository = TasksRepository(session)
    changed = google_time(resource.get("updated"))
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
    clock: Clock,
    tasklist: TaskList,
    resource: dict[str, Any],
    *,
    actor_id: str | None,
    links: Sequence[LinkPair] | None = None,
    pending: MirroredTask | None = None,
) -> MirroredTask | None:
    """Bring the mirror up to ``resource`` (and ``links``, when given); publish the change.

    ``pending`` is the create in progress that ``resource`` answers; without it, a task the
    mirror does not know may be adopted by a matching create in progress (after a crash)."""
    repository = TasksRepository(session)
    google_id = str(resource["id"])
    stored = await repository.task_by_google_id(tasklist.id, google_id, for_update=True)
    if stored is None and pending is not None and pending.google_id in {None, google_id}:
        stored = pending
    if stored is None:
        try:
            stored = await _adoptable(session, tasklist, resource)
        except CreateInProgress:
            return None  # the request creating it records it (a later poll adopts it if it dies)
    if stored is None:
        if resource.get("deleted"):
            return None  # never mirrored, already gone: nothing to announce
        now = clock.now()
        inserted = await repository.insert_task(
            {
                "id": new_id(),
                "org_id": tasklist.org_id,
                "user_id": tasklist.user_id,
                "tasklist_id": tasklist.id,
                "version": 1,
                "created_at": now,
                "updated_at": now,
                **columns(resource),
            }
        )
        stored = await repository.task_by_google_id(tasklist.id, google_id, for_update=True)
        assert stored is not None
        if inserted is not None:
            if links:
                await repository.replace_links(stored, links)
            await publish(
                session, tasklist, stored, sorted(set(links or ())), TaskCreated, actor_id
            )
            return stored
    return await _update(session, clock, tasklist, stored, resource, actor_id=actor_id, links=links)


async def _update(
    session: AsyncSession,
    clock: Clock,
    tasklist: TaskList,
    stored: MirroredTask,
    resource: dict[str, Any],
    *,
    actor_id: str | None,
    links: Sequence[LinkPair] | None,
) -> MirroredTask:
    repository = TasksRepository(session)
    was_pending = stored.google_id is None
    current_links = (await repository.links_of([stored.id]))[stored.id]
    wanted_links = sorted(set(links)) if links is not None else current_links
    newer = was_pending or _is_newer(stored, resource)
    if not newer and wanted_links == current_links:
        return stored
    was_completed, was_deleted = stored.status == COMPLETED, stored.deleted
    if newer:
        for name, value in columns(resource).items():
            setattr(stored, name, value)
        stored.creating_until = None
    if wanted_links != current_links:
        await repository.replace_links(stored, wanted_links)
    if not was_pending:
        stored.version += 1
    stored.updated_at = clock.now()
    await session.flush()
    kind: type[TaskSnapshot]
    if was_pending:
        if stored.deleted:
            return stored  # created and deleted before we knew it: nothing to announce
        kind = TaskCreated
    elif stored.deleted:
        if was_deleted:
            return stored
        kind = TaskDeleted
    elif stored.status == COMPLETED and not was_completed:
        kind = TaskCompleted
    else:
        kind = TaskUpdated
    await publish(session, tasklist, stored, wanted_links, kind, actor_id)
    return stored


async def mark_deleted(
    session: AsyncSession,
    clock: Clock,
    tasklist: TaskList,
    task: MirroredTask,
    *,
    actor_id: str | None,
) -> None:
    """Google deleted ``task`` (with its list, or as a subtask of a deleted task)."""
    if task.google_id is None or task.deleted:
        return
    resource = {**task.resource, "deleted": True, "etag": f"{task.etag}-deleted"}
    await apply_task(session, clock, tasklist, resource, actor_id=actor_id)


async def publish(
    session: AsyncSession,
    tasklist: TaskList,
    task: MirroredTask,
    links: Sequence[LinkPair],
    kind: type[TaskSnapshot],
    actor_id: str | None,
) -> None:
    data = kind(**snapshot(tasklist, task, links, actor_id))
    await add_event(
        session,
        outbox,
        new_event(data, org_id=task.org_id, actor_id=actor_id, time=task.updated_at),
    )


def timeline_status(task: MirroredTask) -> str:
    return "deleted" if task.deleted else task.status


def snapshot(
    tasklist: TaskList, task: MirroredTask, links: Sequence[LinkPair], actor_id: str | None
) -> dict[str, Any]:
    assert task.google_id is not None
    record_links = [Link(type=RecordType(kind), id=record) for kind, record in links]
    summary_parts = []
    if task.due is not None:
        summary_parts.append(f"Due {task.due.isoformat()}.")
    if task.notes:
        summary_parts.append(task.notes)
    summary = " ".join(summary_parts)[:MAX_SUMMARY] or None
    web_link = task.resource.get("webViewLink")
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
        "links": record_links,
        "timeline": TimelineProjection(
            kind=ItemKind.TASK,
            occurred_at=task.completed_at or task.created_at,
            title=(task.title or "(no title)")[:500],
            summary=summary,
            participants=[tasklist.user_email.lower()] if tasklist.user_email else [],
            links=record_links,
            source=TimelineSource(
                service="tasks",
                key=f"tasks:task:{task.id}",
                google_id=task.google_id,
                url=web_link,
            ),
            status=timeline_status(task),
            actor_id=actor_id,
            visibility=Visibility(owner_id=task.user_id),
            version=task.version,
        ),
    }


def public(task: MirroredTask, links: Sequence[LinkPair], parent_id: UUID | None) -> TaskPublic:
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
        web_link=task.resource.get("webViewLink"),
        links=[LinkPublic(type=kind, id=record) for kind, record in links],
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
    resource: dict[str, Any],
    *,
    is_default: bool | None = None,
) -> TaskList:
    """The mirrored list for ``resource`` (inserted if new, renamed if Google's title changed)."""
    org_id, user_id, email = owner
    repository = TasksRepository(session)
    google_id = str(resource["id"])
    now = clock.now()
    await repository.insert_tasklist(
        {
            "id": new_id(),
            "org_id": org_id,
            "user_id": user_id,
            "user_email": email,
            "google_id": google_id,
            "title": resource.get("title") or "",
            "is_default": bool(is_default),
            "etag": resource.get("etag"),
            "created_at": now,
            "updated_at": now,
        }
    )
    stored = await repository.tasklist_by_google_id(org_id, user_id, google_id, for_update=True)
    assert stored is not None
    if stored.etag != resource.get("etag") or (
        is_default is not None and stored.is_default != is_default
    ):
        stored.title = resource.get("title") or ""
        stored.etag = resource.get("etag")
        if is_default is not None:
            stored.is_default = is_default
        stored.updated_at = now
    if email is not None and stored.user_email is None:
        stored.user_email = email
    return stored
